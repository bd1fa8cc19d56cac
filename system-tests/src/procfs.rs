//! What `/proc` says of a process: its resident memory, its name and the CPU time it used, for
//! the figures the KEDA test (`keda::idle_usage`) and `make bench` report.

use anyhow::Context as _;

/// Resident set size of `pid` in MiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no VmRSS for {pid}"))?;
    Ok(kib / 1024.0)
}

/// The command name of `pid` (`/proc/<pid>/comm`).
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|c| c.trim().to_owned())
}

/// Whose CPU time [`cpu_seconds`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    /// The process's own: `utime + stime`.
    Own,
    /// Its own and that of the children it has reaped (`cutime + cstime` too): a process tree
    /// whose children come and go, as the bench measures the whole of itself.
    WithReapedChildren,
}

/// CPU time `pid` has used so far, in seconds, from `/proc/<pid>/stat` (clock ticks of 1/100 s:
/// the kernel's `USER_HZ` on Linux).
pub fn cpu_seconds(pid: u32, whose: Cpu) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    cpu_seconds_of_stat(&stat, whose).with_context(|| format!("/proc/{pid}/stat: {stat}"))
}

fn cpu_seconds_of_stat(stat: &str, whose: Cpu) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime, stime, cutime, cstime are fields 14..17.
    let end = match whose {
        Cpu::Own => 13,
        Cpu::WithReapedChildren => 15,
    };
    let ticks: Option<Vec<f64>> = fields.get(11..end)?.iter().map(|f| f.parse::<f64>().ok()).collect();
    Some(ticks?.iter().sum::<f64>() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_sums_utime_stime_and_with_children_cutime_cstime() {
        let stat = "4242 (on-task complet) S 1 2 3 4 5 6 7 8 9 10 150 50 7 3 20 0 9 0 100 200 300";
        assert_eq!(cpu_seconds_of_stat(stat, Cpu::Own), Some(2.0));
        assert_eq!(cpu_seconds_of_stat(stat, Cpu::WithReapedChildren), Some(2.1));
        assert_eq!(cpu_seconds_of_stat("4242 (x) S 1 2", Cpu::Own), None);
        assert!(cpu_seconds(std::process::id(), Cpu::Own).is_ok());
        assert!(rss_mib(std::process::id()).is_ok_and(|mib| mib > 0.0));
    }
}

"""Claude Desktop's configuration from the README, run the way Claude Desktop runs it.

Claude Desktop starts local (stdio) MCP servers only; the README's `claude_desktop_config.json`
starts the `mcp-remote` bridge (npm) with `npx`, which speaks stdio to the desktop app and
Streamable HTTP, with the configured header, to task-api. This starts the configured command
with its arguments and environment exactly as written (over a minimal environment, as a desktop
app has), and drives it with the official Python MCP SDK's stdio client: two programs nobody
here wrote between the client and `/mcp`.

Run by system-tests/tests/mcp.rs (`make test`): argv[1] is the configuration file (the README's
block with the URL and token filled in), argv[2] the directory to start the command in (where
scripts/mcp-remote.sh installed mcp-remote, so `npx` finds it without the registry). Prints one
JSON line: the tools listed, the task added, the tasks listed, and the error for an empty title.
"""

from __future__ import annotations

import asyncio
import json
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client


async def main(config_path: str, cwd: str) -> None:
    with open(config_path, encoding="utf-8") as f:
        server = json.load(f)["mcpServers"]["todo"]
    params = StdioServerParameters(command=server["command"], args=server["args"], env=server.get("env"), cwd=cwd)
    async with Client(stdio_client(params)) as todo:
        tools = sorted(tool.name for tool in (await todo.list_tools()).tools)
        added = await todo.call_tool("add_task", {"title": "From the desktop", "tags": ["desktop"]})
        listed = await todo.call_tool("list_tasks", {"tag": ["desktop"]})
        oops = await todo.call_tool("add_task", {"title": ""})
        print(
            json.dumps(
                {
                    "tools": tools,
                    "added": added.structured_content,
                    "added_error": added.is_error,
                    "listed": [task["id"] for task in (listed.structured_content or {}).get("items", [])],
                    "error": {"is_error": oops.is_error, "text": oops.content[0].text if oops.content else ""},
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

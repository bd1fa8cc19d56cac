# Deployment targets (Kubernetes): included by the Makefile. The work is done by scripts/*.sh,
# which check their own prerequisites and explain what is missing; these targets only pass the
# variables through.
#
#   make deploy-minikube [MONITORING=1]         Kafka, PostgreSQL, Dapr, KEDA and the functions on minikube
#   make deploy-cloud REGISTRY=... IMAGE_TAG=... KUBE_CONTEXT=...   (connection secrets from the environment)
#   make undeploy [PLATFORM=1] [KUBE_CONTEXT=...]
#   make status | make logs [FUNCTION=...] [SIDECAR=1]
#   make images [IMAGE_REPO=...] [IMAGE_TAG=...] [PUSH=1]
#   make check-manifests                        offline validation of every deployment artifact

DEPLOY_SCRIPTS := scripts

.PHONY: images
images: ## Build the function images (one Dockerfile, FUNCTION build arg); PUSH=1 to push
	$(DEPLOY_SCRIPTS)/images.sh $(FUNCTION)

.PHONY: deploy-minikube
deploy-minikube: ## Deploy everything to minikube (MONITORING=1 adds kube-prometheus-stack)
	$(DEPLOY_SCRIPTS)/deploy-minikube.sh

.PHONY: deploy-cloud
deploy-cloud: ## Deploy to a managed cluster: REGISTRY, IMAGE_TAG, KUBE_CONTEXT + secrets from the environment
	$(DEPLOY_SCRIPTS)/deploy-cloud.sh

.PHONY: undeploy
undeploy: ## Remove the functions (PLATFORM=1: also the local Kafka, PostgreSQL, KEDA, Dapr)
	$(DEPLOY_SCRIPTS)/undeploy.sh

.PHONY: status
status: ## Replicas, KEDA trigger values, consumer lag and dead-letter topic depth
	$(DEPLOY_SCRIPTS)/status.sh

.PHONY: logs
logs: ## Follow the functions' logs (FUNCTION=<name> for one, SIDECAR=1 for its Dapr sidecar)
	$(DEPLOY_SCRIPTS)/logs.sh

.PHONY: smoke
smoke: ## Smoke-test a deployed system through task-api (SCENARIO=1: the whole demo scenario)
	$(DEPLOY_SCRIPTS)/smoke.sh $(if $(filter 1,$(SCENARIO)),--scenario)

.PHONY: check-manifests
check-manifests: ## Validate manifests, Dapr/KEDA resources, Dockerfile, workflows, scripts (offline)
	$(DEPLOY_SCRIPTS)/check-manifests.sh

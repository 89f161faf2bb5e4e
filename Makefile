# The targets `sam build` runs for resources with `BuildMethod: makefile` (template.yaml).

build-ComponentsLayer:
	scripts/build-layer "$(ARTIFACTS_DIR)"

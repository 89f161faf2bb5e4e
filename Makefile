# The targets `sam build` runs for resources with `BuildMethod: makefile` (template.yaml),
# and `make sam-build`, which runs it.

# `sam build` with the functions' `bootstrap` stripped. The workspace's release profile
# keeps line tables, for readable backtraces on a developer's machine, and cargo-lambda
# strips a binary only when the profile has no debug information: these override the
# profile for the functions' build alone (scripts/build-layer builds as locally).
.PHONY: sam-build
sam-build:
	CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols sam build

build-ComponentsLayer:
	scripts/build-layer "$(ARTIFACTS_DIR)"

# The kiosk's disk image (image-build/README.md). Included by the top-level Makefile.
#   make image       builds image-build/out/zizhu-kiosk.img (+ .manifest, SHA256SUMS)
#   make test-image  builds it (cached) and runs tests/image: units verified on the built root,
#                    an nspawn boot, a qemu boot of the disk image
.PHONY: image test-image

IMAGE_OUT ?= image-build/out

image: bootstrap
	@bash image-build/build.sh --out $(IMAGE_OUT)

test-image: bootstrap
	@$(VENV)/bin/pytest -q -p no:cacheprovider tests/image

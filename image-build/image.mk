# The kiosk's disk image (image-build/README.md). Included by the top-level Makefile.
#   make image       builds image-build/out/zizhu-kiosk.img (+ .manifest, SHA256SUMS) and the
#                    signed update bundle zizhu-kiosk.raucb of the same root
#   make bundle      the same build (the bundle is part of it); ZIZHU_RAUC_KEYRING, _CERT and
#                    _KEY select the release keys (image-build/README.md, "Signing keys")
#   make test-image  builds it (cached) and runs tests/image: units verified on the built root,
#                    an nspawn boot, a qemu boot of the disk image
.PHONY: image bundle test-image

IMAGE_OUT ?= image-build/out

image: bootstrap
	@bash image-build/build.sh --out $(IMAGE_OUT)

bundle: image

test-image: bootstrap
	@$(VENV)/bin/pytest -q -p no:cacheprovider tests/image

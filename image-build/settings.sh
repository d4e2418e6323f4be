# Settings shared by the image build's steps (sourced, not run). Every value can be overridden
# from the environment, e.g. `ZIZHU_MIRROR=http://mirrors.example.cn/debian make image`.

ZIZHU_SUITE=${ZIZHU_SUITE:-bookworm}
ZIZHU_MIRROR=${ZIZHU_MIRROR:-http://deb.debian.org/debian}
ZIZHU_SECURITY_MIRROR=${ZIZHU_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# Partition sizes in MiB. The slots are fixed for the life of a deployment: an update writes
# a new root into the other slot and must fit, so they are generous; the data partition grows
# to the end of the disk on first boot (systemd-repart, then x-systemd.growfs).
ESP_MIB=${ESP_MIB:-256}
ROOT_MIB=${ROOT_MIB:-2048}
VERITY_MIB=${VERITY_MIB:-32}
DATA_MIB=${DATA_MIB:-256}

# GPT partition types from the Discoverable Partitions Specification.
TYPE_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
TYPE_ROOT=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709          # root, x86-64
TYPE_ROOT_VERITY=2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5   # root verity, x86-64
TYPE_DATA=0FC63DAF-8483-4772-8E79-3D69D8477DE4          # generic Linux data

# Partition labels: the boot entries and fstab name partitions by these, so slot B is the
# same layout with a different letter.
LABEL_ESP=esp
LABEL_DATA=zizhu-data

# Kernel command line common to every entry. ro: the root is dm-verity and cannot be written
# anyway; systemd.gpt_auto=0: partitions are named explicitly, never guessed.
ZIZHU_CMDLINE_BASE="ro rootfstype=ext4 systemd.gpt_auto=0 panic=10"
ZIZHU_CMDLINE_KIOSK="quiet loglevel=3 systemd.show_status=false vt.global_cursor_default=0 console=tty1"
ZIZHU_CMDLINE_SELFTEST="zizhu.selftest=1 console=tty1 console=ttyS0,115200 systemd.show_status=true"

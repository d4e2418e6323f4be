#!/bin/bash
# dracut module: the kiosk's machine id, kept on its data partition, given to the root before
# systemd starts there (image-build/README.md, "machine-id"). Included by
# /etc/dracut.conf.d/10-zizhu.conf (add_dracutmodules).

check() {
    return 255  # only when asked for
}

depends() {
    echo systemd
    return 0
}

install() {
    inst_multiple mount umount mkdir rmdir
    inst_script "$moddir/zizhu-machine-id.sh" /usr/libexec/zizhu-machine-id
    inst_simple "$moddir/zizhu-machine-id.service" \
        "$systemdsystemunitdir/zizhu-machine-id.service"
    $SYSTEMCTL -q --root "$initdir" enable zizhu-machine-id.service
}

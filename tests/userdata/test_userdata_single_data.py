"""The single host's data volume steps (bbb/data.sh) under bash: real blkid, mkfs.ext4 and cmp on disk
images, so "blank" and "holds data" are what the real tools say; mount, mountpoint and the device tree
are shims (no loop devices here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

LIBS = ("common/lib.sh", "bbb/lib.sh", "bbb/data.sh")
MIB = 1 << 20


def disks(shell, data: bytes | None = None, *, size: int = 16 * MIB) -> Path:
    """/dev with a root disk and one attached data volume: `nvme1n1` is an image file of `size` bytes."""
    dev = shell.root / "dev"
    (dev / "disk" / "by-id").mkdir(parents=True)
    (dev / "nvme0n1").write_text("")
    image = dev / "nvme1n1"
    with image.open("wb") as handle:
        handle.truncate(size)
        if data is not None:
            handle.write(data)
    for volume, target in (("vol0aaaaaaaaaaaaaaaa", "nvme0n1"), ("vol0bbbbbbbbbbbbbbbb", "nvme1n1")):
        (dev / "disk" / "by-id" / f"nvme-Amazon_Elastic_Block_Store_{volume}").symlink_to(f"../../{target}")
    shell.shim("findmnt", f"echo {dev}/nvme0n1p1")
    shell.shim("lsblk", "echo nvme0n1")
    mounted = shell.root / "mounted"
    mounted.mkdir()
    shell.shim("mountpoint", f'[[ -e {mounted}/$(echo "$2" | tr / _) ]]')
    shell.shim("mount", f'touch {mounted}/$(echo "$1" | tr / _)')
    return dev


def env(shell, dev: Path) -> dict[str, str]:
    root = shell.root
    (root / "fstab").write_text("LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n")
    return {
        "DEV_DIR": str(dev),
        "FSTAB": str(root / "fstab"),
        "SINGLE_DATA_MOUNT": str(root / "srv-data"),
        "DATA_MOUNT": str(root / "var-bigbluebutton"),
        "GREENLIGHT_DIR": str(root / "greenlight-v3"),
        "LETSENCRYPT_DIR": str(root / "letsencrypt"),
        "DATA_DEVICE_TIMEOUT": "60",
    }


def uuid_of(image: Path) -> str:
    return subprocess.run(
        ["blkid", "-o", "value", "-s", "UUID", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_first_boot_formats_a_blank_volume_and_binds_the_data_directories(shell) -> None:
    dev = disks(shell)
    variables = env(shell, dev)
    for _ in range(2):  # a re-run of the bootstrap changes nothing
        result = shell.run("prepare_single_data", libs=LIBS, env=variables)
        assert result.returncode == 0, result.stderr
    assert uuid_of(dev / "nvme1n1")  # really ext4 now
    root = shell.root
    fstab = (root / "fstab").read_text().splitlines()
    assert fstab[1] == (
        f"UUID={uuid_of(dev / 'nvme1n1')} {root}/srv-data ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2"
    )
    binds = {line.split()[1]: line for line in fstab[2:]}
    assert set(binds) == {f"{root}/var-bigbluebutton", f"{root}/greenlight-v3", f"{root}/letsencrypt"}
    assert binds[f"{root}/greenlight-v3"] == (
        f"{root}/srv-data/greenlight-v3 {root}/greenlight-v3 none "
        f"bind,nofail,x-systemd.requires-mounts-for={root}/srv-data 0 0"
    )
    assert len(fstab) == 5
    assert [c[1] for c in shell.calls("mount")] == [
        f"{root}/srv-data",
        f"{root}/var-bigbluebutton",
        f"{root}/greenlight-v3",
        f"{root}/letsencrypt",
    ]
    assert all((root / "srv-data" / sub).is_dir() for sub in ("bigbluebutton", "greenlight-v3", "letsencrypt"))


def test_a_reattached_or_restored_volume_is_mounted_by_its_uuid_and_never_formatted(shell) -> None:
    dev = disks(shell)
    subprocess.run(["mkfs.ext4", "-q", "-L", "bbbdata", str(dev / "nvme1n1")], check=True)
    before = (dev / "nvme1n1").read_bytes()
    shell.shim("mkfs.ext4", "exit 99")
    result = shell.run("prepare_single_data", libs=LIBS, env=env(shell, dev))
    assert result.returncode == 0, result.stderr
    assert shell.calls("mkfs.ext4") == []
    assert (dev / "nvme1n1").read_bytes() == before
    assert f"UUID={uuid_of(dev / 'nvme1n1')} " in (shell.root / "fstab").read_text()


def test_a_volume_with_data_but_no_filesystem_is_never_formatted(shell) -> None:
    dev = disks(shell, data=b"\0" * 4096 + b"PGDMP recordings and a database")
    shell.shim("mkfs.ext4", "exit 99")
    result = shell.run("prepare_single_data", libs=LIBS, env=env(shell, dev))
    assert result.returncode == 1
    assert "is not blank but has no filesystem blkid recognises: not formatting it" in result.stderr
    assert shell.calls("mkfs.ext4") == [] and shell.calls("mount") == []


def test_a_partitioned_or_foreign_volume_is_left_alone(shell) -> None:
    dev = disks(shell)
    subprocess.run(["mkfs.ext2", "-q", str(dev / "nvme1n1")], check=True)
    shell.shim("mkfs.ext4", "exit 99")
    result = shell.run("prepare_single_data", libs=LIBS, env=env(shell, dev))
    assert result.returncode == 1
    assert "holds a ext2 filesystem, not ext4: not touching it" in result.stderr
    assert shell.calls("mkfs.ext4") == []


def test_the_host_waits_for_the_attachment_then_gives_up_clearly(shell) -> None:
    dev = disks(shell)
    (dev / "disk" / "by-id" / "nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbbb").unlink()
    (dev / "nvme1n1").unlink()
    result = shell.run("prepare_single_data", libs=LIBS, env=env(shell, dev))
    assert result.returncode == 1
    assert "no data volume was attached after 60s" in result.stderr
    assert len(shell.calls("sleep")) == 6  # every 10 s on the virtual clock


def test_recordings_of_a_vanished_uid_go_back_to_bigbluebutton(shell) -> None:
    data = shell.root / "var-bigbluebutton"
    (data / "published").mkdir(parents=True)
    orphan = data / "published" / "meeting-1.tar"
    orphan.write_text("x")
    kept = data / "published" / "root-owned"
    kept.write_text("y")
    subprocess.run(["chown", "54321:54321", str(orphan)], check=True)
    result = shell.run(
        "restore_data_owner", libs=LIBS, env={"DATA_MOUNT": str(data), "BBB_USER": "root", "BBB_GROUP": "root"}
    )
    assert result.returncode == 0, result.stderr
    assert (orphan.stat().st_uid, orphan.stat().st_gid) == (0, 0)
    assert kept.stat().st_uid == 0

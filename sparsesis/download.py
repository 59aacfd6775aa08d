"""Fetch LabelMeFacade from its public source and verify every file.

    python -m sparsesis.download --dest data/labelmefacade
    python -m sparsesis.download --dest data/labelmefacade --archive labelmefacade.zip   # offline, from a zip

The archive is the GitHub snapshot of cvjena/labelmefacade at a fixed commit; every extracted file is
checked against the SHA-256 list shipped with the package. The images are a LabelMe subset: use them
for non-commercial research only, and cite Froehlich, Rodner & Denzler, ICPR 2010.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path

COMMIT = "a0dbc272351f9d6914805fbba62d75740308f52f"
ARCHIVE_URL = f"https://github.com/cvjena/labelmefacade/archive/{COMMIT}.zip"
KEEP = ("images/", "labels/", "train.txt", "test.txt")


class DownloadError(RuntimeError):
    pass


def shipped_checksums() -> dict[str, str]:
    text = (resources.files("sparsesis.classsets") / "labelmefacade.sha256").read_text()
    return parse_checksums(text)


def parse_checksums(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(root: Path, checksums: dict[str, str]) -> list[str]:
    """Names of files that are missing or whose hash differs (empty = all good)."""
    bad = []
    for name, digest in checksums.items():
        p = root / name
        if not p.is_file() or sha256(p) != digest:
            bad.append(name)
    return bad


def extract(archive: Path, dest: Path, checksums: dict[str, str]) -> Path:
    """Unpack the dataset files from a GitHub snapshot zip into ``dest`` and verify them."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, FileNotFoundError) as err:
        raise DownloadError(f"{archive} is not a readable zip archive ({err})") from err
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        with zf:
            for info in zf.infolist():
                # strip the top folder GitHub adds (labelmefacade-<commit>/)
                parts = info.filename.split("/", 1)
                rel = parts[1] if len(parts) == 2 else ""
                if not rel or info.is_dir() or not rel.startswith(KEEP) or ".." in rel:
                    continue
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        bad = verify(tmp, checksums)
        if bad:
            raise DownloadError(f"{len(bad)} file(s) missing or corrupt after extraction, e.g. {bad[:3]}; "
                                "delete the archive and download again")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def download(url: str, to: Path) -> Path:
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(to, "wb") as f:
            total = int(r.headers.get("Content-Length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="downloading LabelMeFacade") as bar:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
    except OSError as err:
        raise DownloadError(f"could not download {url} ({err}). Without internet, fetch the zip elsewhere "
                            "and pass it with --archive") from err
    return to


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsesis.download", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", default="data/labelmefacade")
    p.add_argument("--archive", default=None, help="use this local zip instead of downloading")
    p.add_argument("--url", default=ARCHIVE_URL)
    a = p.parse_args(argv)
    dest = Path(a.dest).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    checksums = shipped_checksums()
    if dest.is_dir() and not verify(dest, checksums):
        print(f"{dest} already holds a verified copy of LabelMeFacade")
        return
    try:
        if a.archive:
            archive = Path(a.archive)
        else:
            archive = download(a.url, dest.parent / f"labelmefacade-{COMMIT[:8]}.zip")
        extract(archive, dest, checksums)
    except DownloadError as err:
        sys.exit(f"error: {err}")
    print(f"LabelMeFacade verified in {dest}\nuse it with: export SPARSESIS_DATA={dest}")


if __name__ == "__main__":
    main()

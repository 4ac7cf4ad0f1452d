"""mnist and fashion_mnist: each 28×28 image read row by row, a 28-step sequence of 28 features.

Files are found in this order: `data.root`, `$LSTMCTL_DATA_DIR` (and its `<name>/` folder), the cache
`~/.cache/lstmctl/<name>` (`$XDG_CACHE_HOME` respected), then system locations (Debian's
`dataset-fashion-mnist` package installs `/usr/share/datasets/fashion-mnist`). `download: true`
fetches the four files from the mirrors torchvision uses, checks each md5 and renames into place
only when it matches, so an interrupted download never leaves a half file under the real name.

Validation: `val_images` (default 5,000) training images are carved at random with `val_seed`, a data
seed of its own (default 0), NOT the run's seed: every seed of a group, and every run of a sweep,
validates on the same images and trains on the same others. The test files are never part of it
(only `lstmctl eval` reads them). `subset` takes the first N of each split after the carve, so the
carve itself never depends on it. Runs recorded before the carve existed (their data_state.json has
no `val_images`) are rebuilt as they were trained: no carve, `train.val_fraction` as before.
"""

from __future__ import annotations

import hashlib
import math
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from lstmctl.data.augment import augmenter
from lstmctl.data.base import DataBundle, Split, Task, carve_val
from lstmctl.data.facts import ImageFacts
from lstmctl.data.idx import read_idx
from lstmctl.errors import UserError
from lstmctl.registry import register_dataset
from lstmctl.schema import Strict

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # of the .gz files
    classes: tuple[str, ...]
    system_dirs: tuple[str, ...]
    package_hint: str = ""


SOURCES = {
    "mnist": Source(
        "mnist",
        "MNIST",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        tuple(str(i) for i in range(10)),
        ("/usr/share/datasets/mnist", "/usr/local/share/datasets/mnist"),
    ),
    "fashion_mnist": Source(
        "fashion_mnist",
        "Fashion-MNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        ("/usr/share/datasets/fashion-mnist", "/usr/local/share/datasets/fashion-mnist"),
        " or install Debian's package: sudo apt-get install dataset-fashion-mnist",
    ),
}


class MnistParams(Strict):
    root: str | None = Field(
        None,
        description="folder holding the four IDX files (.gz or raw); searched first, and where download writes "
        "(relative to the config file's folder)",
        json_schema_extra={"config_relative": True},
    )
    download: bool = Field(False, description="fetch missing files from the public mirrors (md5-checked)")
    mirrors: list[str] | None = Field(
        None, description="base URLs to download from, tried in order; null = the mirrors torchvision uses"
    )
    subset: int | None = Field(
        None, ge=1,
        description="use only the first N images of each split: training, validation (of the fixed carve) and test (quick runs)",
    )
    val_images: int = Field(
        5000, ge=0,
        description="training images carved (at random, with val_seed) as the validation split; 0 = none. At most a "
        "twelfth of the training images (5,000 of 60,000 is exactly that), at least one; train.val_fraction > 0 "
        "replaces it with that share of the training images",
    )
    val_seed: int = Field(
        0, ge=0,
        description="seed of the validation carve, independent of the run's seed: every run seed validates on the same images",
    )
    rows_per_step: Literal[1, 2, 4, 7, 14, 28] = Field(
        1,
        description="image rows read per time step: 2 reads 14 steps of 56 pixels (two rows side by side), "
        "about half the time per epoch of 1; a divisor of 28",
    )
    hflip: bool = Field(
        False,
        description="augment: mirror each training image left-right with probability 0.5, drawn anew every epoch "
        "(clothes look alike mirrored; digits do not: leave it off for mnist)",
    )
    shift: int = Field(
        0, ge=0, le=4,
        description="augment: move each training image by up to N pixels up/down and left/right (random, every "
        "epoch), filling with background",
    )
    normalize: Literal["standard", "unit", "none"] = Field(
        "standard",
        description="standard: zero mean, unit std (statistics of the training images); unit: pixels/255; none: 0..255",
    )


def cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lstmctl" / name


def search_dirs(src: Source, root: str | None) -> list[Path]:
    dirs: list[Path] = []
    if root:
        dirs += [Path(root).expanduser(), Path(root).expanduser() / src.name]
    env = os.environ.get("LSTMCTL_DATA_DIR")
    if env:
        dirs += [Path(env).expanduser(), Path(env).expanduser() / src.name]
    dirs.append(cache_dir(src.name))
    dirs += [Path(d) for d in src.system_dirs]
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def _find_in(folder: Path) -> dict[str, Path]:
    found = {}
    for stem in FILES:
        for cand in (folder / f"{stem}.gz", folder / stem):
            if cand.is_file():
                found[stem] = cand
                break
    return found


def download_dir(src: Source, root: str | None) -> Path:
    if root:
        return Path(root).expanduser()
    env = os.environ.get("LSTMCTL_DATA_DIR")
    return Path(env).expanduser() / src.name if env else cache_dir(src.name)


def locate(src: Source, root: str | None, download: bool, mirrors: list[str] | None) -> dict[str, Path]:
    """The four files, from the first folder that has all of them; download if allowed."""
    dirs = search_dirs(src, root)
    partial = []
    for d in dirs:
        found = _find_in(d)
        if len(found) == len(FILES):
            return found
        if found:
            partial.append(f"{d} lacks {', '.join(s for s in FILES if s not in found)}")
    dest = download_dir(src, root)
    if download:
        fetch_all(src, dest, mirrors)
        return _find_in(dest)
    names = ", ".join(f"{s}.gz" for s in FILES)
    also = f" ({'; '.join(partial)})" if partial else ""
    raise UserError(
        f"{src.title} files not found: need {names} (gzipped or not) in one folder; searched "
        f"{', '.join(map(str, dirs))}{also}. Get them with data.download: true (saves into {dest}), put them in "
        f"data.root or $LSTMCTL_DATA_DIR{src.package_hint}"
    )


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_all(src: Source, dest: Path, mirrors: list[str] | None = None) -> None:
    """Download the missing .gz files into `dest`, md5-checked, with a progress bar on stderr."""
    # imported here, not at the top: only a download draws a progress bar, and every command imports
    # this module (to register the dataset), so the CLI's start-up does not pay for rich.progress
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {dest} to download {src.title} into: {e.strerror}; set data.root to a writable folder") from None
    urls = list(mirrors) if mirrors else list(src.mirrors)
    have = _find_in(dest)
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console
    ) as progress:
        for stem in FILES:
            if stem in have:
                continue
            fname = f"{stem}.gz"
            errors = []
            for base in urls:
                url = base if base.endswith("/") else base + "/"
                url += fname
                try:
                    _fetch_one(url, dest / fname, src.md5[fname], progress)
                    break
                except _FetchError as e:
                    errors.append(f"{url}: {e}")
            else:
                raise UserError(
                    f"could not download {src.title} file {fname}: {'; '.join(errors)}. Check the network, or place the "
                    f"four files in {dest} yourself{src.package_hint}"
                )


class _FetchError(Exception):
    pass


def _fetch_one(url: str, target: Path, md5: str, progress) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        try:
            with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as out:  # noqa: S310 (http/https/file only)
                total = r.headers.get("Content-Length")
                task = progress.add_task(target.name, total=int(total) if total else None)
                h = hashlib.md5(usedforsecurity=False)
                while block := r.read(1 << 16):
                    out.write(block)
                    h.update(block)
                    progress.advance(task, len(block))
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise _FetchError(getattr(e, "reason", None) or str(e)) from None
        if h.hexdigest() != md5:
            raise _FetchError(f"md5 mismatch (got {h.hexdigest()}, expected {md5})")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def load_arrays(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    xs_tr = read_idx(files["train-images-idx3-ubyte"], 3)
    ys_tr = read_idx(files["train-labels-idx1-ubyte"], 1)
    xs_te = read_idx(files["t10k-images-idx3-ubyte"], 3)
    ys_te = read_idx(files["t10k-labels-idx1-ubyte"], 1)
    for xs, ys, a, b in ((xs_tr, ys_tr, "train-images", "train-labels"), (xs_te, ys_te, "t10k-images", "t10k-labels")):
        if len(xs) != len(ys):
            raise UserError(
                f"{files[a + '-idx3-ubyte'].parent}: {a} holds {len(xs)} images but {b} holds {len(ys)} labels; "
                "the files do not belong together (fetch them again)"
            )
        if len(ys) and (ys.min() < 0 or ys.max() > 9):
            raise UserError(f"{files[b + '-idx1-ubyte']}: labels must be 0..9, found {int(ys.min())}..{int(ys.max())}")
    return xs_tr, ys_tr, xs_te, ys_te


def val_count(n: int, val_images: int, val_fraction: float) -> int:
    """How many of `n` training images the validation carve takes."""
    if val_fraction > 0:  # an explicit share: no cap, but something must be left to train on
        count = max(1, math.ceil(n * val_fraction))
        if n - count < 1:
            raise UserError(
                f"train.val_fraction={val_fraction} leaves no training data: there are only {n} training images; lower it"
            )
        return count
    if val_images <= 0 or n < 2:
        return 0
    # a twelfth at most (5,000 of 60,000): the small files of quick tests keep most of their images
    return min(val_images, max(1, n // 12))


def carve(n: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, validation indices), each ascending: `count` of `n` images drawn with `seed`.

    Its own torch.Generator, so the carve depends on n, count and seed alone (never on the run's
    seed or the global RNG state).
    """
    if count <= 0:
        return torch.arange(n), torch.arange(0)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val = order[:count].sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    return keep.nonzero().squeeze(1), val


def _split(xs: np.ndarray, ys: np.ndarray, idx=slice(None)) -> Split:
    # indexed while still uint8: a quarter of the memory of indexing the float copy
    return Split(torch.from_numpy(xs[idx].astype(np.float32)), torch.from_numpy(ys[idx].astype(np.int64)))


def _splits(
    xs_tr: np.ndarray, ys_tr: np.ndarray, xs_te: np.ndarray, ys_te: np.ndarray, p: MnistParams, val_fraction: float, saved: dict
) -> tuple[Split, Split | None, Split, dict]:
    """Train, validation and test splits (raw pixels), and the carve's record for data_state.json."""
    test = _split(xs_te, ys_te, slice(0, p.subset))
    if saved and "val_images" not in saved:  # a run trained before the carve: rebuild it the old way
        train, val = carve_val(_split(xs_tr, ys_tr, slice(0, p.subset)), val_fraction, "training images")
        return train, val, test, {}
    if saved:  # a reopened run: the carve it was trained with, whatever the defaults are now
        count, seed = int(saved["val_images"]), int(saved["val_seed"])
    else:
        count, seed = val_count(len(xs_tr), p.val_images, val_fraction), p.val_seed
    tr_idx, val_idx = carve(len(xs_tr), count, seed)
    train = _split(xs_tr, ys_tr, tr_idx[: p.subset].numpy())
    val = _split(xs_tr, ys_tr, val_idx[: p.subset].numpy()) if count else None
    return train, val, test, {"val_images": count, "val_seed": seed}


def _build(name: str, p: MnistParams, val_fraction: float, state: dict | None) -> DataBundle:
    src = SOURCES[name]
    files = locate(src, p.root, p.download, p.mirrors)
    saved = state or {}
    train, val, test, carved = _splits(*load_arrays(files), p, val_fraction, saved)
    if p.normalize == "standard":
        if "pixel_mean" in saved:
            mean, std = float(saved["pixel_mean"]), float(saved["pixel_std"])
        else:  # statistics of the training images only (validation and test are never looked at)
            mean, std = float(train.x.double().mean()), float(train.x.double().std())
        std = std if std > 0 else 1.0
    elif p.normalize == "unit":
        mean, std = 0.0, 255.0
    else:
        mean, std = 0.0, 1.0
    k = p.rows_per_step
    for s in (train, val, test):
        if s is not None:
            s.x.sub_(mean).div_(std)
            s.x = s.x.reshape(len(s.x), 28 // k, 28 * k)  # k rows side by side per step (a view)
    return DataBundle(
        task=Task.CLASSIFICATION,
        train=train,
        val=val,
        test=test,
        input_size=28 * k,
        output_size=10,
        facts=ImageFacts(
            class_names=list(src.classes),
            image_shape=[28, 28],
            pixel_scale=std,  # pixel (0..255) = x * pixel_scale + pixel_offset
            pixel_offset=mean,
            files={k: str(v) for k, v in files.items()},
        ),
        state={"normalize": p.normalize, "pixel_mean": mean, "pixel_std": std, **carved},
        augment=augmenter(p.hflip, p.shift, background=(0.0 - mean) / std, image_shape=(28, 28)),
    )


@register_dataset("mnist", MnistParams)
def build_mnist(p: MnistParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """Handwritten digits, 28 rows of 28 pixels per image, 10 classes (60,000 train / 10,000 test)."""
    return _build("mnist", p, val_fraction, state)


@register_dataset("fashion_mnist", MnistParams)
def build_fashion_mnist(p: MnistParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """Zalando's clothing images, 28 rows of 28 pixels per image, 10 classes (60,000 train / 10,000 test)."""
    return _build("fashion_mnist", p, val_fraction, state)

"""``gan-upscale``: upscale files and folders from the shell, in-process or through a running service.

    gan-upscale photos/ -o out/ --scale 3            # ONNX Runtime here, with the service's own engine
    gan-upscale a.jpg b.png --faces --server http://gpu-box:8000

In-process it loads only the models it needs and runs them with the service's engine (app.upscaler: decode,
tiles, batcher, faces, resize, encode), so a file comes out exactly as /upscale would answer it. With
``--server`` it posts each file to /upscale with the client library (app.client). One bad file does not stop
the batch: it is reported, the others finish, and the exit code is 1 with a summary of what failed and why.
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
FAMILY = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff", ".png": "png"}  # the rest -> png
EXT = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path  # where the output goes (its extension follows the output format)


@dataclass
class Outcome:
    job: Job
    error: str | None = None
    skipped: bool = False


def _scale(v: str) -> float:
    try:
        f = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{v}' is not a number") from None
    if not 1.0 <= f <= 8.0:
        raise argparse.ArgumentTypeError(f"scale {v} is outside 1-8")
    return f


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gan-upscale", description=__doc__.split("\n\n")[0],
        epilog="Scales other than the model's: the x2 model serves up to x2, x4 above, then the result is resized to "
               "the exact size (Lanczos when enlarging, area when shrinking). Environment: GAN_* settings as for "
               "gan-serve (e.g. GAN_INTRA_OP_THREADS, GAN_PROVIDERS) apply in-process.",
    )
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", help="output folder (the input folders' layout is kept); default: beside each input, "
                                          "with --suffix")
    p.add_argument("-s", "--scale", type=_scale, default=None, help="any factor from 1 to 8 (default: the model's, else 4)")
    p.add_argument("-m", "--model", help="model name (default: sr-x2 for scales up to 2, sr-x4 above; on a CPU their "
                                          "-int8 variants, as the service serves them)")
    p.add_argument("--mode", choices=("faithful", "crisp"), help="instead of --model, for real photos (JPEG artefacts, "
                                                                 "noise, blur): faithful = real-xN-l1, crisp = real-xN")
    p.add_argument("--faces", action="store_true", help="also upscale faces with the face model (face-x4)")
    p.add_argument("-f", "--format", choices=("png", "jpeg", "webp", "tiff"), help="output format (default: the input's family)")
    p.add_argument("-q", "--quality", type=int, default=90, choices=range(1, 101), metavar="1-100", help="JPEG/WebP quality")
    p.add_argument("-t", "--tile", type=int, default=0, help="tile side in input pixels (in-process; default GAN_TILE_SIZE, 512)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="files in flight at once (default 1)")
    p.add_argument("-r", "--recursive", action="store_true", help="look into sub-folders of input folders")
    p.add_argument("--suffix", default=None, help="added to output names (default '_x<scale>' beside the inputs, none in -o)")
    p.add_argument("--skip-existing", action="store_true", help="leave files whose output exists")
    p.add_argument("--dry-run", action="store_true", help="list what would be written, run nothing")
    p.add_argument("--server", help="URL of a running service: send the files there instead of running the models here")
    p.add_argument("--api-key", default=os.environ.get("GAN_API_KEY") or None, help="the service's API key (default $GAN_API_KEY)")
    p.add_argument("--models-dir", help="in-process: the models folder (default GAN_MODELS_DIR, else the shipped models/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def collect(inputs: list[str], recursive: bool) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, the folder its output path is relative to) for every input, in a stable order; and what matched nothing."""
    found: list[tuple[Path, Path]] = []
    missing = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found += [(f, path) for f in sorted(path.glob(pattern)) if f.is_file() and f.suffix.lower() in EXTENSIONS]
        elif path.is_file():
            found.append((path, path.parent))
        else:
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=recursive))
            files = [m for m in matches if m.is_file()]
            if not files:
                missing.append(spec)
            found += [(f, f.parent) for f in files]
    seen: set[Path] = set()
    unique = []
    for f, root in found:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append((f, root))
    return unique, missing


def out_format(src: Path, asked: str | None) -> str:
    return asked or FAMILY.get(src.suffix.lower(), "png")


def plan(files: list[tuple[Path, Path]], args: argparse.Namespace) -> list[Job]:
    scale = args.scale or 4
    suffix = args.suffix if args.suffix is not None else ("" if args.output else f"_x{scale:g}")
    jobs = []
    for src, root in files:
        fmt = out_format(src, args.format)
        ext = src.suffix if FAMILY.get(src.suffix.lower()) == fmt else EXT[fmt]  # photo.JPEG stays .JPEG
        if not args.output and suffix and src.stem.endswith(suffix):
            continue  # an earlier run's output beside its input
        name = f"{src.stem}{suffix}{ext}"
        dst = (Path(args.output) / src.relative_to(root).parent / name) if args.output else src.with_name(name)
        if dst.resolve() == src.resolve():
            dst = dst.with_name(f"{src.stem}_x{scale:g}{ext}")
        jobs.append(Job(src, dst))
    return jobs


def _pixels(path: Path) -> int:
    """The input's pixel count from its header (the progress bar's weight); 1 when unreadable."""
    try:
        with Image.open(path) as im:
            return max(1, im.size[0] * im.size[1])
    except Exception:
        return 1


class LocalEngine:
    """The service's engine in this process: registry (only the models needed), batchers, app.upscaler.run."""

    def __init__(self, args: argparse.Namespace) -> None:
        from app.config import Settings

        overrides: dict = {"warmup": False, "max_input_pixels": 1 << 40, "max_output_pixels": 1 << 40,
                           "max_input_side": 1 << 20}
        if args.models_dir:
            overrides["models_dir"] = Path(args.models_dir)
        if args.tile:
            overrides["tile_size"] = args.tile
        self.settings = Settings(**overrides)
        self.args = args

    def needed(self) -> set[str]:
        from app.kinds import default_upscalers, real_photo_upscaler, scales_for

        if self.args.model:
            names = {self.args.model, *(f"{self.args.model}-{v}" for v in ("fp16", "int8"))}
        elif self.args.mode:
            names = {real_photo_upscaler(s, self.args.mode) for s in scales_for(self.args.scale)}
        else:
            names = {n for s in scales_for(self.args.scale) for n in default_upscalers(s)}
        return names | ({self.settings.face_model} if self.args.faces else set())

    async def __aenter__(self) -> LocalEngine:
        from app.registry import Registry

        self.registry = Registry(self.settings)
        await asyncio.to_thread(self.registry.load, self.needed())
        self.model = self.registry.upscaler(self.args.model, self.args.scale, self.args.mode)  # ApiError when missing
        self.face_model = self.registry.face_model() if self.args.faces else None
        self.registry.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.registry.stop()

    async def upscale(self, data: bytes, fmt: str) -> bytes:
        from app import upscaler

        a = self.args
        result = await upscaler.run(self.model, data, fmt, a.quality, self.settings, face_model=self.face_model, scale=a.scale)
        return result.body


class RemoteEngine:
    """POST /upscale on a running service (app.client), with its 503 retries."""

    def __init__(self, args: argparse.Namespace) -> None:
        from app.client import AsyncClient

        self.args = args
        self.client = AsyncClient(args.server, api_key=args.api_key, timeout=3600.0)

    async def __aenter__(self) -> RemoteEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def upscale(self, data: bytes, fmt: str) -> bytes:
        a = self.args
        r = await self.client.upscale(data, scale=a.scale, model=a.model, faces=a.faces, format=fmt, quality=a.quality,
                                      mode=a.mode)
        return r.content


def _describe(e: BaseException) -> str:
    from app.errors import ApiError

    if isinstance(e, ApiError):
        return f"{e.status} {e.code}: {e.message}"
    return str(e) or type(e).__name__


async def process(jobs: list[Job], engine: LocalEngine | RemoteEngine, args: argparse.Namespace) -> list[Outcome]:
    weights = {job: _pixels(job.src) for job in jobs}
    bar = tqdm(total=sum(weights.values()), unit="px", unit_scale=True, disable=args.no_progress, dynamic_ncols=True,
               file=sys.stderr)
    gate = asyncio.Semaphore(max(1, args.jobs))
    outcomes: list[Outcome] = []

    async def one(job: Job) -> None:
        async with gate:
            bar.set_postfix_str(job.src.name, refresh=True)
            try:
                data = await asyncio.to_thread(job.src.read_bytes)
                body = await engine.upscale(data, out_format(job.src, args.format))
                job.dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = job.dst.with_name(job.dst.name + ".part")
                await asyncio.to_thread(tmp.write_bytes, body)
                os.replace(tmp, job.dst)  # never a half-written output under the real name
                outcomes.append(Outcome(job))
            except Exception as e:  # one bad file must not stop the batch
                outcomes.append(Outcome(job, _describe(e)))
                bar.write(f"failed: {job.src}: {_describe(e)}")
            finally:
                bar.update(weights[job])

    try:
        await asyncio.gather(*(one(j) for j in jobs))
    finally:
        bar.close()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.model and args.mode:
        p.error("give --model or --mode, not both")
    if args.server and args.tile:
        print("note: --tile applies in-process; the server tiles with its own GAN_TILE_SIZE", file=sys.stderr)
    files, missing = collect(args.inputs, args.recursive)
    for spec in missing:
        print(f"no such file, folder or match: {spec}", file=sys.stderr)
    jobs = plan(files, args)
    skipped = [j for j in jobs if args.skip_existing and j.dst.exists()]
    todo = [j for j in jobs if j not in skipped]
    if args.dry_run:
        for j in jobs:
            print(f"{j.src} -> {j.dst}" + ("  (exists: skipped)" if j in skipped else ""))
        return 1 if missing else 0
    if not todo:
        print(f"nothing to do: {len(skipped)} skipped (output exists), {len(missing)} inputs not found", file=sys.stderr)
        return 1 if missing or not jobs else 0
    try:
        outcomes = asyncio.run(_run(todo, args))
    except Exception as e:  # the model cannot be loaded, the server cannot be reached...
        print(f"gan-upscale: {_describe(e)}", file=sys.stderr)
        return 2
    failed = [o for o in outcomes if o.error]
    print(f"{len(outcomes) - len(failed)} written, {len(skipped)} skipped (output exists), {len(failed)} failed"
          + (f", {len(missing)} inputs not found" if missing else ""), file=sys.stderr)
    for o in sorted(failed, key=lambda o: str(o.job.src)):
        print(f"  {o.job.src}: {o.error}", file=sys.stderr)
    return 1 if failed or missing else 0


async def _run(jobs: list[Job], args: argparse.Namespace) -> list[Outcome]:
    engine = RemoteEngine(args) if args.server else LocalEngine(args)
    async with engine:
        return await process(jobs, engine, args)


if __name__ == "__main__":
    sys.exit(main())

"""llama.cpp's own tools as PyPI ships them: the Hugging Face -> GGUF converter and the quantizer.

- The runtime and the quantizer come from ``llama-cpp-python`` (the ``export`` extra), which uv compiles from
  its source distribution (build flags in pyproject.toml) and keeps in its cache:
  ``llama_cpp.llama_model_quantize`` writes Q8_0, Q4_K_M and llama.cpp's other types from an F16 GGUF.
- The converter (``convert_hf_to_gguf.py``, its ``conversion`` package and its own copy of ``gguf-py``) is not
  in that wheel. It is taken from the source distribution of the *same* llama-cpp-python version (``pip
  download``), unpacked once into ``<cache>/llama.cpp/<version>`` (``fetch_converter``; ./runTests.sh and
  runExport.sh call it at set-up, so an export itself needs no network), and run as a subprocess: its
  ``gguf-py`` and the ``gguf`` package of the gemma extra never meet in one process.
So converter, quantizer and runtime are one llama.cpp commit.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..llamacpp import DISTRIBUTION, llama_cpp, llama_cpp_version
from ..student.bases import cache_root, ensure_cached

CONVERTER = "convert_hf_to_gguf.py"
# What the converter needs of the llama.cpp tree the sdist vendors (the script imports both folders).
CONVERTER_PARTS = (CONVERTER, "conversion/", "gguf-py/")
VENDORED = "vendor/llama.cpp/"
# Types the converter writes itself; every other type is quantized from the F16 file.
CONVERTER_TYPES = ("f32", "f16", "bf16")
CONVERT_TIMEOUT_S = 3600


def quant_ftypes() -> dict[str, int]:
    """Every file type the quantizer knows, by lower-case name (q8_0, q4_k_m, q5_k_m, ...): llama.cpp's
    LLAMA_FTYPE_MOSTLY_* constants as llama-cpp-python exposes them."""
    module = llama_cpp()
    prefix = "LLAMA_FTYPE_MOSTLY_"
    return {name[len(prefix):].lower(): int(getattr(module, name)) for name in dir(module) if name.startswith(prefix)}


def check_quant_types(types: list[str]) -> list[str]:
    """The requested types, lower-cased, each one llama.cpp knows; UserError naming the known ones otherwise."""
    known = set(quant_ftypes()) | set(CONVERTER_TYPES)
    wanted = [t.lower() for t in types]
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise UserError(f"unknown GGUF type(s) {', '.join(unknown)}: llama.cpp {llama_cpp_version()} knows "
                        f"{', '.join(sorted(known))}")
    if not wanted:
        raise UserError("no GGUF type to write: pass at least one, e.g. --quant-types f16 q8_0 q4_k_m")
    return wanted


# --- the converter ------------------------------------------------------------------------------------------


def converter_folder() -> Path:
    """Where the converter of the installed llama-cpp-python version lives once fetched."""
    return cache_root() / "llama.cpp" / llama_cpp_version()


def fetch_converter(log: Any = print) -> Path:
    """The converter folder, downloaded (pip) and unpacked first when it is missing or incomplete."""
    wanted = llama_cpp_version()
    expected = {"distribution": DISTRIBUTION, "version": wanted, "parts": list(CONVERTER_PARTS)}
    return ensure_cached(converter_folder(), expected, lambda work: _unpack_sdist(wanted, work), log=log,
                         required=(CONVERTER,))


def _unpack_sdist(wanted: str, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llama-cpp-sdist-") as download:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"{DISTRIBUTION}=={wanted}", "-d", download], capture_output=True, text=True)
        archives = sorted(Path(download).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            last = (done.stderr.strip().splitlines() or ["no source distribution came back"])[-1]
            raise UserError(f"could not download the {DISTRIBUTION}=={wanted} source distribution for its GGUF "
                            f"converter ({last}); run the set-up again where the package index is reachable")
        with tarfile.open(archives[0]) as archive:
            members = [m for m in archive.getmembers() if _converter_part(m.name) is not None]
            for member in members:
                member.name = _converter_part(member.name)
            archive.extractall(work, members=members, filter="data")
    if not (work / CONVERTER).is_file():
        raise UserError(f"the {DISTRIBUTION}=={wanted} source distribution holds no {VENDORED}{CONVERTER}")
    return {"fetch_s": round(time.perf_counter() - started, 1)}


def _converter_part(name: str) -> str | None:
    """The path inside the converter folder of an sdist member, None for a member the converter does not need."""
    _, _, rest = name.partition("/")  # drop the sdist's top folder (llama_cpp_python-<version>/)
    if not rest.startswith(VENDORED):
        return None
    inner = rest[len(VENDORED):]
    return inner if any(inner == p or (p.endswith("/") and inner.startswith(p)) for p in CONVERTER_PARTS) else None


def convert_to_gguf(model_dir: Path, out: Path, outtype: str = "f16", log: Any = print) -> float:
    """llama.cpp's converter on a transformers folder; writes ``out`` atomically. Returns the seconds taken.

    The converter's own error (a tokenizer it cannot read, an architecture it does not know) becomes one line.
    """
    converter = fetch_converter(log) / CONVERTER
    tmp = out.with_name(f".{out.name}.partial")
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(converter), str(model_dir), "--outfile", str(tmp),
                               "--outtype", outtype], capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S)
        if done.returncode != 0:
            raise UserError(f"llama.cpp's converter failed on {model_dir}: {_last_error(done.stderr)}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return time.perf_counter() - started


def _last_error(stderr: str) -> str:
    """The line of a converter's stderr that says what went wrong (its last error line, else its last line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[:400]
    return lines[-1][:400] if lines else "no message"


def quantize(src: Path, out: Path, quant_type: str, threads: int | None = None) -> float:
    """llama.cpp's quantizer (llama_model_quantize) from an F16 GGUF to ``quant_type``; writes ``out``
    atomically. Returns the seconds taken."""
    module = llama_cpp()
    ftype = quant_ftypes()[quant_type]
    params = module.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or os.cpu_count() or 1
    tmp = out.with_name(f".{out.name}.partial")
    started = time.perf_counter()
    try:
        status = module.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if status != 0 or not tmp.is_file():
            raise UserError(f"llama.cpp could not quantize {src} to {quant_type} (status {status}); is there room "
                            f"on the disk of {out.parent}?")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """`python -m ast_distill.export.llamacpp_tools fetch`: the set-up step that caches the converter."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print("usage: python -m ast_distill.export.llamacpp_tools fetch", file=sys.stderr)
        return 2
    try:
        folder = fetch_converter(log=lambda message: print(message, file=sys.stderr))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

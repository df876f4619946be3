"""What this machine is good at, measured: the bf16 / torch.compile decision every torch stage takes.

CPUs of one cloud "kind" differ. On one with native bf16 (AVX512-BF16 or AMX), CPU autocast to bf16 trains the
scratch student faster than fp32, and torch.compile saves a further ~27% a step. On one without (an AVX2-only
EPYC, measured: a bf16 matmul at ~1 GFLOP/s against ~38-120 in fp32), the same bf16 step is ~15x slower and
compiling gains ~6% a step while its first step costs minutes on a cold cache. So no stage assumes: each asks
``decide_precision`` once, which reads the CPU's flags and torch's capability, times a small matmul in both
dtypes (~0.1 s), prints one line and returns a record the stage writes into its run_config.json.

Settings (config ``training.bf16`` / ``training.torch_compile``, ``alignment.bf16``):
- ``true``: on where it is faster (measured here); off elsewhere, saying why;
- ``"always"``: on even where it is slower (a one-line warning when the probe says it is);
- ``false``: off.
"""
from __future__ import annotations

import functools
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

ALWAYS = "always"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that compute bf16 natively
REPORTED_FLAGS = NATIVE_BF16_FLAGS + ("avx512f", "avx2", "fma")
PROBE_SIZE = 256  # a 256x256 matmul: ~1 ms in fp32, ~30 ms in emulated bf16: the whole probe stays near 0.1 s
PROBE_SECONDS = 0.06  # per dtype, over all rounds
PROBE_ROUNDS = 3
BF16_MIN_SPEEDUP = 1.0  # bf16 is "faster" when its matmul rate is at least fp32's


@dataclass
class CpuInfo:
    model: str
    capability: str  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", "DEFAULT", ...
    flags: list[str] = field(default_factory=list)  # the REPORTED_FLAGS this CPU has
    threads: int = 0

    @property
    def native_bf16(self) -> bool:
        return any(f in self.flags for f in NATIVE_BF16_FLAGS)

    def record(self) -> dict[str, Any]:
        """The JSON block of this CPU, its class included."""
        return {**asdict(self), "native_bf16": self.native_bf16, "cpu_class": self.cpu_class}

    @property
    def cpu_class(self) -> str:
        """The class README figures are given for: "native-bf16" or "no-native-bf16"."""
        return "native-bf16" if self.native_bf16 else "no-native-bf16"


@dataclass
class PrecisionDecision:
    """What a stage runs with, and the measured facts it decided from."""
    device: str
    bf16: bool
    torch_compile: bool
    requested_bf16: bool | str
    requested_torch_compile: bool | str
    reason: str
    cpu: CpuInfo | None = None
    fp32_gflops: float | None = None
    bf16_gflops: float | None = None
    warnings: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The JSON block a stage writes into its run_config.json / summary."""
        return {**asdict(self), "cpu": None if self.cpu is None else self.cpu.record()}

    def line(self) -> str:
        """One line for the log: the decision and the figures it rests on."""
        return (f"precision: bf16 {'on' if self.bf16 else 'off'}, torch_compile "
                f"{'on' if self.torch_compile else 'off'} on {self.device} ({self.reason})")


def check_setting(value: Any, key: str) -> bool | str:
    """true, false or "always"; anything else is a one-line UserError naming the key."""
    if isinstance(value, bool) or value == ALWAYS:
        return value
    raise UserError(f"{key} is {value!r}: use true (on where measured faster), \"always\" or false")


def _cpuinfo() -> tuple[str | None, set[str]]:
    """(model name, flags) from one read of /proc/cpuinfo; (None, empty) where there is none (macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, set()
    model, flags = None, set()
    for line in text.splitlines():
        if model is None and line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
        elif not flags and line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    return model, flags


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This CPU's model name, torch's capability and the bf16-relevant flags (cached per process)."""
    import torch

    model, flags = _cpuinfo()
    capability = str(torch.backends.cpu.get_cpu_capability())
    return CpuInfo(model=model or platform.processor() or platform.machine() or "unknown", capability=capability,
                   flags=[f for f in REPORTED_FLAGS if f in flags], threads=torch.get_num_threads())


def matmul_gflops(dtype: Any, *, size: int = PROBE_SIZE, seconds: float = PROBE_SECONDS) -> float:
    """GFLOP/s of a size x size matmul in dtype on the CPU, timed for about `seconds` after one warm-up."""
    import torch

    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    reps, start = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2.0 * size ** 3 * reps / elapsed / 1e9


@functools.lru_cache(maxsize=1)
def cpu_matmul_rates(rounds: int = PROBE_ROUNDS) -> tuple[float, float]:
    """(fp32, bf16) matmul GFLOP/s on this CPU, measured once per process.

    On one thread (the ratio of the two dtypes is what decides, and a multi-threaded matmul waits for a core
    that another busy process holds: seen at 2 GFLOP/s instead of ~110 while a second job ran); each dtype is
    timed `rounds` times, interleaved, and its best round kept.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fp32 = bf16 = 0.0
        for _ in range(rounds):
            fp32 = max(fp32, matmul_gflops(torch.float32, seconds=PROBE_SECONDS / rounds))
            bf16 = max(bf16, matmul_gflops(torch.bfloat16, seconds=PROBE_SECONDS / rounds))
    finally:
        torch.set_num_threads(threads)
    return fp32, bf16


def decide_precision(device: str, requested_bf16: Any, requested_compile: Any = False, *,
                     stage: str = "training") -> PrecisionDecision:
    """bf16 and torch.compile for `device`, from the settings and, on a CPU, the measured matmul rates.

    CUDA: bf16 where the GPU supports it; compile as asked. MPS: never bf16 autocast, no compile.
    CPU: bf16 when a bf16 matmul runs at least as fast as fp32 here; compile only on a CPU where bf16 is
    the fast path (measured there: 0.357 -> 0.261 s a step; on an AVX2-only CPU 6.5% once compiled, and a
    first step of 155 s on a cold cache).
    """
    bf16_setting = check_setting(requested_bf16, f"{stage}.bf16")
    compile_setting = check_setting(requested_compile, f"{stage}.torch_compile")
    if device == "cuda":
        import torch

        supported = torch.cuda.is_bf16_supported()
        bf16 = bool(bf16_setting) and supported
        reason = f"CUDA {torch.cuda.get_device_name(0)}, bf16 {'supported' if supported else 'not supported'}"
        return PrecisionDecision(device, bf16, bool(compile_setting), bf16_setting, compile_setting, reason)
    if device != "cpu":
        return PrecisionDecision(device, False, False, bf16_setting, compile_setting,
                                 f"{device}: fp32, no compile (bf16 autocast and compile are CPU/CUDA paths here)")
    from .distributed import agree, is_main_process

    # Several processes (torchrun): the main one measures, and all take its decision (one precision per run).
    measured = agree(measure_cpu() if is_main_process() else None)
    return cpu_decision(measured, bf16_setting, compile_setting, stage)


def measure_cpu() -> tuple[CpuInfo, float, float]:
    """This CPU and its one-thread matmul rates (GFLOP/s): fp32, bf16."""
    cpu = cpu_info()
    fp32, bf16_rate = cpu_matmul_rates()
    return cpu, fp32, bf16_rate


def cpu_decision(measured: tuple[CpuInfo, float, float], bf16_setting: Any, compile_setting: Any,
                 stage: str) -> PrecisionDecision:
    """decide_precision's choice on a CPU from what measure_cpu measured."""
    cpu, fp32, bf16_rate = measured
    bf16_faster = bf16_rate >= BF16_MIN_SPEEDUP * fp32
    figures = (f"{cpu.model}, torch capability {cpu.capability}, flags {','.join(cpu.flags) or 'none'}; "
               f"{PROBE_SIZE}x{PROBE_SIZE} matmul on one thread {fp32:.1f} GFLOP/s fp32 vs {bf16_rate:.1f} bf16")
    warnings = []
    bf16 = bf16_setting == ALWAYS or (bf16_setting is True and bf16_faster)
    if bf16_setting == ALWAYS and not bf16_faster:
        warnings.append(f"warning: {stage}.bf16 is \"always\" but bf16 is {fp32 / max(bf16_rate, 1e-9):.0f}x "
                        f"slower than fp32 on this CPU ({figures}); set it to true to let the probe decide")
    compile_pays = bf16_faster
    compile_on = compile_setting == ALWAYS or (compile_setting is True and compile_pays)
    if compile_setting == ALWAYS and not compile_pays:
        warnings.append(f"warning: {stage}.torch_compile is \"always\" on a CPU without fast bf16, where "
                        f"compiling was measured to gain ~6% a step and its first step takes minutes")
    return PrecisionDecision("cpu", bf16, compile_on, bf16_setting, compile_setting, figures, cpu, round(fp32, 2),
                             round(bf16_rate, 2), warnings)


def announce(decision: PrecisionDecision, log: Any = print) -> None:
    """Print the decision and any warning, one line each."""
    log(decision.line())
    for warning in decision.warnings:
        log(warning)


def machine_record(device: str) -> dict[str, Any]:
    """The machine an evaluation ran on, for its summary and the report: device, dtype, CPU class, GPU."""
    import torch

    from .student import inference_dtype

    out: dict[str, Any] = {"device": device, "dtype": str(inference_dtype(device)).replace("torch.", ""),
                           "cpu": cpu_info().record()}
    if device == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def machine_line(record: dict[str, Any] | None) -> str:
    """One line for a report: "AMD EPYC (no-native-bf16, torch AVX2, 2 threads), cpu, float32"."""
    if not record:
        return "n/a"
    cpu = record.get("cpu") or {}
    gpu = f", GPU {record['gpu']}" if record.get("gpu") else ""
    return (f"{cpu.get('model', '?')} ({cpu.get('cpu_class', '?')}, torch {cpu.get('capability', '?')}, "
            f"{cpu.get('threads', '?')} threads){gpu}; generation on {record.get('device')} in {record.get('dtype')}")

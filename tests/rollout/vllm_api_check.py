"""Check the vLLM double against vLLM's released source (a script, not a test: it needs wheels).

    pip download --no-deps -d WHEELS vllm==0.32.0 vllm==0.33.0 vllm==0.34.0   # or one at a time
    python tests/rollout/vllm_api_check.py WHEELS/vllm-*.whl

For each wheel it reads the Python source (no import, no GPU) and checks that every name,
keyword, field and constant the double mirrors (vllm_double*.py) is in that release: the LLM
constructor's keywords (its own or EngineArgs fields), the signatures of the LLM methods the
engine calls, SamplingParams / CompletionOutput / RequestOutput / Logprob fields, the worker's
`reload_weights` keywords, the sleep tags, the logprobs modes, and that external_launcher turns
off vLLM's engine-core process. Prints one line per check; exits 1 if any fails.
"""

from __future__ import annotations

import ast
import inspect
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from vllm_double import ENGINE_ARGS, LLM, LOGPROBS_MODES, SLEEP_TAGS  # noqa: E402
from vllm_double_types import CompletionOutput, Logprob, RequestOutput, SamplingParams  # noqa: E402


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)


def _method_args(cls: ast.ClassDef, name: str) -> list[str]:
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return [a.arg for a in fn.args.args + fn.args.kwonlyargs]


def _fields(cls: ast.ClassDef) -> set[str]:
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}


def check(wheel: Path) -> list[tuple[bool, str]]:
    with zipfile.ZipFile(wheel) as z:

        def tree(path: str) -> ast.Module:
            return ast.parse(z.read(f"vllm/{path}").decode())

        def text(path: str) -> str:
            return z.read(f"vllm/{path}").decode()

        llm = _class(tree("entrypoints/llm.py"), "LLM")
        engine_args = _fields(_class(tree("engine/arg_utils.py"), "EngineArgs"))
        runner = "v1/worker/gpu_model_runner.py"
        if f"vllm/{runner}" not in z.namelist():
            runner = "v1/worker/gpu/model_runner.py"  # 0.34: the V2 model runner
        reload_args = _method_args(_class(tree(runner), "GPUModelRunner"), "reload_weights")
        outputs = tree("outputs.py")
        results = []
        own = set(_method_args(llm, "__init__"))
        for kw in ["model", "tensor_parallel_size", "dtype", "seed", "gpu_memory_utilization"]:
            results.append((kw in own, f"LLM(..., {kw}=) is a constructor keyword"))
        for kw in ENGINE_ARGS:
            results.append((kw in own or kw in engine_args, f"LLM(..., {kw}=) reaches EngineArgs"))
        for name in LLM.API:
            double = [a for a in inspect.signature(getattr(LLM, name)).parameters if a != "self"]
            real = [a for a in _method_args(llm, name) if a != "self"]
            extra = [a for a in double if a not in real]
            results.append((not extra, f"LLM.{name}{tuple(double)} within {tuple(real)}"))
        sampling = _fields(_class(tree("sampling_params.py"), "SamplingParams"))
        for field in SamplingParams.FIELDS:
            results.append((field in sampling, f"SamplingParams.{field}"))
        completion = _fields(_class(outputs, "CompletionOutput"))
        for field in CompletionOutput.API:
            results.append((field in completion, f"CompletionOutput.{field}"))
        request = set(_method_args(_class(outputs, "RequestOutput"), "__init__"))
        for field in RequestOutput.API:
            results.append((field in request, f"RequestOutput.{field}"))
        logprob = _fields(_class(tree("logprobs.py"), "Logprob"))
        for field in Logprob.API:
            results.append((field in logprob, f"Logprob.{field}"))
        for kw in ("weights_iterator", "weights_path", "is_checkpoint_format"):
            results.append((kw in reload_args, f"GPUModelRunner.reload_weights({kw}=)"))
        worker = text("v1/worker/gpu_worker.py")
        results.append(("def reload_weights" in worker, "Worker.reload_weights"))
        tags = 'SLEEP_TAGS = frozenset(("weights", "kv_cache"))'
        ok = tags in text("v1/executor/abstract.py") and SLEEP_TAGS == {"weights", "kv_cache"}
        results.append((ok, "sleep tags: weights, kv_cache"))
        model_cfg = text("config/model.py")
        results.append((all(f'"{m}"' in model_cfg for m in LOGPROBS_MODES), "logprobs modes"))
        inproc = 'os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"' in text("config/parallel.py")
        results.append((inproc, "external_launcher: the engine core runs in-process"))
        return results


def main(wheels: list[str]) -> int:
    failed = 0
    for wheel in wheels:
        for ok, what in check(Path(wheel)):
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {Path(wheel).name}: {what}")
    print(f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

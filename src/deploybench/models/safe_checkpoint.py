"""Read a checkpoint's tensors without running any code pickled in it.

Model-zoo files are full training checkpoints: besides the weights they pickle metadata
(mmengine's `HistoryBuffer`, numpy arrays and scalars, the config), which plain weights-only
loading refuses. Unpickling them in full would run whatever callables the pickle names. Instead,
every global the pickle names beyond torch's own weights-only allow-list is bound to an inert
stand-in (an empty class that accepts and drops its arguments), so torch's weights-only
unpickler builds the tensors as usual and the metadata as harmless placeholders. Modules that
torch's weights-only unpickler blocks outright (`os`, `subprocess`, `sys`, ...) stay blocked:
such a file is refused. Nothing but tensors is taken from the result.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import pickletools
import zipfile
from typing import Any

import torch

from deploybench.errors import UserError

# A legacy (pre-zip) torch.save file is four pickles: magic number, protocol, system info, data.
LEGACY_PICKLES = 4


class Inert:
    """What a pickled non-tensor object becomes: it takes any arguments and state, and keeps
    nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _stand_in(full_name: str) -> tuple[type, str]:
    module, _, name = full_name.rpartition(".")
    return type(name, (Inert,), {"__module__": module, "__qualname__": name}), full_name


def _python3_name(module: str, name: str) -> str:
    # Protocol-2 pickles name Python 2 modules (`__builtin__`); the unpickler maps them.
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _legacy_globals(raw: bytes) -> set[str]:
    stream, names = io.BytesIO(raw), set()
    for _ in range(LEGACY_PICKLES):
        for opcode, arg, _pos in pickletools.genops(stream):
            if opcode.name == "GLOBAL":
                module, name = str(arg).split(" ", 1)
                names |= {f"{module}.{name}", _python3_name(module, name)}
            elif opcode.name == "STACK_GLOBAL":
                # torch.save writes protocol 2 (GLOBAL); anything else is not a torch checkpoint.
                raise UserError("the checkpoint's legacy-format pickle uses protocol 4 globals, "
                                "which torch.save never writes: not a PyTorch checkpoint")
    return names


def globals_named(raw: bytes) -> set[str]:
    """Every `module.name` the checkpoint's pickle refers to, beyond torch's defaults where torch
    can tell (zip format)."""
    if zipfile.is_zipfile(io.BytesIO(raw)):
        return set(torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(raw)))
    return _legacy_globals(raw)


def load_tensors(raw: bytes, label: str) -> Any:
    """The checkpoint's content with every non-torch object replaced by an inert placeholder."""
    try:
        stand_ins = [_stand_in(name) for name in sorted(globals_named(raw))]
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError) as err:
        reason = str(err).strip().splitlines()
        # torch's message is a page of advice on unsafe loading; its last line names the cause.
        cause = next((line for line in reversed(reason) if "GLOBAL" in line), reason[-1]
                     if reason else type(err).__name__)
        raise UserError(f"checkpoint {label} cannot be read as tensors ({cause}); deploybench "
                        "never unpickles code: use a plain PyTorch checkpoint") from None

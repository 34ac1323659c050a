"""Layer specs (``all``, ``11``, ``0,6,11``, ``-1``, ``4:9``, ``0:31:5``) and row specs (one
layer, a concat, a mix): the one parser of each.

Layer 0 is the embedding output, layer L the model's final output (after the final norm,
as ``output_hidden_states`` numbers them). Every command and the API parse specs here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from probe.errors import ProbeError


def resolve_layers(spec: str | Sequence[int], num_layers: int) -> list[int]:
    """Parse ``all``, ``11``, ``0,6,11``, ``-1``, ``4:9`` (a Python slice: 4..8) or ``0:31:5``
    (a slice with a step: 0, 5, .., 30).

    Valid layers are 0 (embeddings) .. num_layers (final output); negatives count from the end.
    A slice is Python's over 0..num_layers, so ``::5`` is every fifth layer from 0 and ``5:``
    every layer from 5; a step must be a whole number >= 1.
    """
    valid = list(range(num_layers + 1))
    items = [spec] if isinstance(spec, str) else [str(x) for x in spec]
    chosen: list[int] = []
    for item in (part.strip() for text in items for part in str(text).split(",")):
        try:
            if item == "all":
                chosen.extend(valid)
            elif ":" in item:
                chosen.extend(_slice(item, valid))
            else:
                index = int(item)
                if not -len(valid) <= index < len(valid):
                    raise IndexError
                chosen.append(valid[index])
        except (ValueError, IndexError):
            raise ProbeError(
                f"invalid layer '{item}': this model has layers 0..{num_layers} "
                f"(0 = embeddings, {num_layers} = final output; -1 = last)"
            ) from None
    return sorted(set(chosen))


def _slice(item: str, valid: list[int]) -> list[int]:
    """``start:stop`` or ``start:stop:step`` over ``valid``; a bad step is its own line."""
    parts = item.split(":")
    if len(parts) > 3:
        raise ValueError(item)
    start, stop, step = (int(v) if v.strip() else None for v in [*parts, ""][:3])
    if step is not None and step < 1:
        raise ProbeError(
            f"invalid layer slice '{item}': the step must be 1 or more (0:31:5 = every "
            "fifth layer from 0 to 30)"
        )
    picked = valid[slice(start, stop, step)]
    if not picked:
        raise ValueError(item)
    return picked


# --- row specs: what one head reads ---------------------------------------------------------

MIX = "mix"
SINGLE, CONCAT = "single", "concat"


class RowSpec(NamedTuple):
    """What one head reads: one layer, several side by side (``concat``), or a learned ``mix``.

    The one parser of ``--layer 11``, ``--layer 12,18,24`` (or ``12+18+24``, as a sweep row
    names it) and ``--layer mix``, used by fit, sweep, curve, persistence and predict. ``layers``
    hold the user's words until ``resolved`` turns them into model layers; a mix of no named
    layers mixes every stored one.
    """

    kind: str  # SINGLE, CONCAT or MIX
    layers: tuple  # model layers once resolved (str parts before)

    @property
    def multi(self) -> bool:
        return self.kind != SINGLE

    @property
    def name(self) -> int | str:
        """A sweep row's ``layer`` field: 11, "12+18+24" or "mix"."""
        if self.kind == SINGLE:
            return self.layers[0]
        return MIX if self.kind == MIX else "+".join(str(layer) for layer in self.layers)

    @property
    def file_stem(self) -> str:
        """The row's name in a file name: "11", "12-18-24", "mix"."""
        return str(self.name).replace("+", "-")

    def resolved(self, layer_of, stored: Sequence[int]) -> RowSpec:
        """Model layers for every part (``layer_of("-1")`` -> a stored layer); a mix of no
        named layers takes every stored one."""
        if self.kind == MIX and not self.layers:
            return RowSpec(MIX, tuple(stored))
        return RowSpec(self.kind, tuple(layer_of(part) for part in self.layers))


def parse_row_spec(spec) -> RowSpec:
    """``11`` -> single; ``12,18,24`` or ``12+18+24`` -> concat; ``mix`` -> every stored layer
    mixed. A ``RowSpec`` passes through unchanged."""
    if isinstance(spec, RowSpec):
        return spec
    text = str(spec).strip().lower()
    if text == MIX:
        return RowSpec(MIX, ())
    parts = tuple(part.strip() for part in text.replace("+", ",").split(",") if part.strip())
    if len(parts) > 1:
        return RowSpec(CONCAT, parts)
    if not parts:
        raise ProbeError("empty --layer; give a layer such as 11, -1, 12,18,24 or mix")
    return RowSpec(SINGLE, parts)

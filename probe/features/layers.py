"""Layer specs: the one parser of ``all``, ``11``, ``0,6,11``, ``-1`` and ``4:9``.

Layer 0 is the embedding output, layer L the model's final output (after the final norm,
as ``output_hidden_states`` numbers them). Every command and the API parse specs here.
"""

from __future__ import annotations

from collections.abc import Sequence

from probe.errors import ProbeError


def resolve_layers(spec: str | Sequence[int], num_layers: int) -> list[int]:
    """Parse ``all``, ``11``, ``0,6,11``, ``-1`` or ``4:9`` (a Python slice: 4..8).

    Valid layers are 0 (embeddings) .. num_layers (final output); negatives count from the end.
    """
    valid = list(range(num_layers + 1))
    items = [spec] if isinstance(spec, str) else [str(x) for x in spec]
    chosen: list[int] = []
    for item in (part.strip() for text in items for part in str(text).split(",")):
        try:
            if item == "all":
                chosen.extend(valid)
            elif ":" in item:
                start, stop = (int(v) if v.strip() else None for v in item.split(":", 1))
                picked = valid[slice(start, stop)]
                if not picked:
                    raise ValueError
                chosen.extend(picked)
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

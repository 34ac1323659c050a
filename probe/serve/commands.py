"""``probe predict`` as one library call: a head (or an ONNX export) and texts in, rows out.

The command parses its options, calls ``predict_request`` and prints the lines it returns:
the texts may come as arguments or from a file, the head as a saved .json (run by torch,
word heads tagging every word) or as an export folder (run by onnxruntime).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from probe.errors import ProbeError
from probe.messages import say


@dataclass
class Predictions:
    rows: list[dict]  # one per text: label + probabilities, or its tagged words
    tagged: bool = False  # a word head's rows (``probe.serve.wordpredict``)

    def lines(self, as_json: bool = False) -> list[str]:
        """JSONL lines (``--json``), else the readable table (or ``word/LABEL`` lines)."""
        from probe.serve.predict import format_predictions
        from probe.serve.wordpredict import format_tagged

        if as_json:
            return [json.dumps(row, ensure_ascii=False) for row in self.rows]
        return [format_tagged(self.rows) if self.tagged else format_predictions(self.rows)]


def predict_request(
    texts=(),
    *,
    head: str | None = None,
    onnx_dir: str | None = None,
    data: str | None = None,
    text_col: str = "text",
    model: str | None = None,
    device: str | None = "auto",
) -> Predictions:
    """Classify ``texts`` (or the texts of the file ``data``) with a head .json or an ONNX
    export folder; exactly one of each pair is given."""
    if bool(texts) == bool(data):
        raise ProbeError("give texts as arguments or --data FILE (one of the two)")
    if bool(head) == bool(onnx_dir):
        raise ProbeError("give --head HEAD.json or --onnx EXPORT_DIR (one of the two)")
    if data:
        from probe.data.readers import read_dataset

        dataset = read_dataset(data, text_col, label_col=None)
        if dataset.skipped_empty:
            say(f"skipped {dataset.skipped_empty} empty texts")
        texts = dataset.texts
    if onnx_dir:
        from probe.serve.export import OnnxPredictor

        return Predictions(OnnxPredictor.load(onnx_dir).predict(list(texts)))
    from probe.serve.predict import load_predictor
    from probe.serve.wordpredict import is_word_head, predict_words

    predictor = load_predictor(head, model, device)
    if is_word_head(predictor.meta):  # a word head tags each word
        return Predictions(predict_words(predictor, list(texts)), tagged=True)
    return Predictions(predictor.predict(list(texts)))

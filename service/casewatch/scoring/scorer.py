"""The scorer: an onnxruntime session plus the contract that says how to feed it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnx.utils

from casewatch.errors import ModelError
from casewatch.events import ModelIdentity
from casewatch.scoring.contract import Contract, read_contract, validate_against_graph
from casewatch.scoring.explanations import IntArray, PositionExplanations
from casewatch.scoring.training_summary import TrainingSummary, read_training_summary

FloatMatrix = npt.NDArray[np.float32]
Features = dict[str, npt.NDArray[np.generic]]
# onnxruntime's vectorised float kernels (Log, for one) compute the elements of a tensor that do
# not fill a whole SIMD register on a scalar path that can differ in the last bit, so a case's
# score would depend on the width of the ring it is scored in and on its place in the batch.
# A run whose [rows, ring] tensors do not fill whole registers of this many floats gets rows
# added (copies of its last row, their results dropped); a ring of 16 or 32 never needs them.
SIMD_FLOATS = 16


@dataclass(frozen=True, slots=True)
class ScoreBatch:
    """Scores of one batch: ``residuals`` is [B, T] (zeros when the model has none);
    ``explanation`` holds the explanation outputs of its anomalous cases, None until they are
    asked for (``Scorer.explain``) or when the model declares none."""

    scores: npt.NDArray[np.float64]
    residuals: FloatMatrix
    explanation: PositionExplanations | None = None

    @staticmethod
    def concat(parts: list[ScoreBatch]) -> ScoreBatch:
        """Scores of several runs, one after the other (explanations are added afterwards)."""
        return ScoreBatch(
            np.concatenate([p.scores for p in parts]), np.concatenate([p.residuals for p in parts])
        )


class Scorer:
    """Loads, validates and runs one exported scorer.

    Input names, concatenation plans and output names are resolved here once, so ``run`` only
    assembles arrays and calls the session.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        contract_path: str | Path | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        import onnxruntime as ort  # noqa: PLC0415 - keeps `casewatch --help` fast

        self.path = Path(path)
        try:
            payload = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{self.path}: cannot read model: {exc.strerror}") from None
        try:
            model = onnx.load_from_string(payload)
        except Exception as exc:
            raise ModelError(f"{self.path}: not an ONNX model ({type(exc).__name__})") from None
        override = Path(contract_path) if contract_path is not None else None
        self.contract: Contract = read_contract(model, origin=str(self.path), override=override)
        validate_against_graph(self.contract, model.graph, origin=str(self.path))
        # The drift baseline; optional, and never used to score.
        self.training_summary: TrainingSummary | None = read_training_summary(
            model, origin=str(self.path)
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        # Fatal only: a failing run is raised as ModelError with its cause, and the raw
        # onnxruntime error lines would repeat it on stderr for every isolated case.
        options.log_severity_level = 4
        explanation = self.contract.explanation
        # Scoring runs a copy of the graph without the explanation nodes (onnxruntime runs every
        # node of a graph whatever is fetched), so only anomalous cases pay for them.
        scoring = payload if explanation is None else _scoring_only(model, self.contract)
        self._session = self._open(ort, scoring, options)
        self._explaining = None if explanation is None else self._open(ort, payload, options)
        self._explanation_outputs = [] if explanation is None else [
            name for _, name in explanation.outputs()
        ]  # fmt: skip
        self.identity = ModelIdentity(
            name=self.contract.name,
            version=self.contract.version,
            sha256=hashlib.sha256(payload).hexdigest(),
        )
        self.activities: list[str] = list(self.contract.activities)
        self.activity_ids: dict[str, int] = {a: i for i, a in enumerate(self.activities)}
        self.event_attribute_ids: list[dict[str, int]] = [
            {v: i for i, v in enumerate(attr.values)} for attr in self.contract.event_attributes
        ]
        self.features = self.contract.features
        self._bindings = [(b.name, tuple(b.features)) for b in self.contract.inputs]
        outputs = [self.contract.score.name]
        if self.contract.residuals is not None:
            outputs.append(self.contract.residuals)
        self._outputs = outputs
        self._score_sign = 1.0 if self.contract.score.higher_is_anomalous else -1.0
        self.threshold = float(self.contract.threshold)

    def run(self, features: Features, batch_size: int) -> ScoreBatch:
        """One session run for the whole batch."""
        if batch_size == 0:
            return ScoreBatch(np.zeros(0), np.zeros((0, len(self.activities)), np.float32))
        rows = _aligned_rows(features, batch_size)
        try:
            results = self._session.run(self._outputs, self._feed(_padded(features, rows)))
        except Exception as exc:
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: scoring failed: {line}") from None
        scores = np.asarray(results[0], dtype=np.float64).reshape(rows)[:batch_size]
        scores = scores * self._score_sign
        if self.contract.residuals is not None:
            residuals = np.asarray(results[1], dtype=np.float32)[:batch_size]
        else:
            residuals = np.zeros((batch_size, len(self.activities)), np.float32)
        return ScoreBatch(scores, residuals)

    @property
    def explains(self) -> bool:
        """Whether the model declares explanation outputs."""
        return self._explaining is not None

    def explain(self, features: Features, rows: IntArray) -> PositionExplanations:
        """The explanation outputs for ``rows`` of a batch, in one run of the whole graph."""
        if self._explaining is None:
            raise ModelError(f"{self.path}: the model declares no explanation outputs")
        subset = {name: array[rows] for name, array in features.items()}
        try:
            results = self._explaining.run(self._explanation_outputs, self._feed(subset))
        except Exception as exc:
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: explaining failed: {line}") from None
        surprise, feature, expected, expected_p, observed_p = results
        attributes = subset.get("event_attributes")
        return PositionExplanations(
            surprise, feature, expected, expected_p, observed_p,
            np.asarray(subset["sequence"], np.int64),
            None if attributes is None else np.asarray(attributes, np.int64),
        )  # fmt: skip

    def _open(self, ort: Any, payload: bytes, options: Any) -> Any:
        try:
            return ort.InferenceSession(
                payload, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: onnxruntime cannot load the model: {reason}") from None

    def _feed(self, features: Features) -> dict[str, npt.NDArray[np.generic]]:
        feed: dict[str, npt.NDArray[np.generic]] = {}
        for name, parts in self._bindings:
            if len(parts) == 1:
                feed[name] = features[parts[0]]
            else:
                feed[name] = np.concatenate([features[p] for p in parts], axis=1)
        return feed


def _aligned_rows(features: Features, batch_size: int) -> int:
    """The rows a run takes so that its ring-wide tensors fill whole SIMD registers."""
    sequence = features.get("sequence")
    if (
        sequence is None
        or sequence.ndim != 2
        or (batch_size * sequence.shape[1]) % SIMD_FLOATS == 0
    ):
        return batch_size
    return -(-batch_size // SIMD_FLOATS) * SIMD_FLOATS


def _padded(features: Features, rows: int) -> Features:
    extra = rows - len(next(iter(features.values())))
    if extra == 0:
        return features
    return {name: _repeat_last(array, rows) for name, array in features.items()}


def _repeat_last(array: npt.NDArray[np.generic], rows: int) -> npt.NDArray[np.generic]:
    """``array`` grown to ``rows`` with copies of its last row, in one allocation."""
    out = np.empty((rows, *array.shape[1:]), dtype=array.dtype)
    out[: len(array)] = array
    out[len(array) :] = array[-1]
    return out


def _scoring_only(model: onnx.ModelProto, contract: Contract) -> bytes:
    """The graph cut down to what the score and residuals need."""
    inputs = [binding.name for binding in contract.inputs]
    outputs = [contract.score.name, *([contract.residuals] if contract.residuals else [])]
    try:
        cut: bytes = onnx.utils.Extractor(model).extract_model(inputs, outputs).SerializeToString()
    except Exception:
        # A graph the extractor cannot cut (its shape inference refuses it) still scores
        # whole: every case then pays for the explanation nodes, nothing else changes.
        whole: bytes = model.SerializeToString()
        return whole
    return cut


def load_scorer(
    path: str | Path, *, contract_path: str | Path | None = None, intra_op_threads: int = 1
) -> Scorer:
    return Scorer(path, contract_path=contract_path, intra_op_threads=intra_op_threads)

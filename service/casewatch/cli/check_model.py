"""``casewatch check-model M``: print the contract, or exit 1 with the reason it is invalid."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from casewatch.scoring.scorer import Scorer


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="ONNX scorer")
    parser.add_argument("--contract", type=Path, help="contract file for models without one")


def run(args: argparse.Namespace) -> int:
    scorer = Scorer(args.model, contract_path=args.contract)
    print(json.dumps(json.loads(scorer.contract.to_json()), indent=2, ensure_ascii=False))
    identity = scorer.identity
    print(f"ok: {identity.name} {identity.version} sha256={identity.sha256}")
    return 0

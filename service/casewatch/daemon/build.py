"""Wiring: the one place below the command line that reads the settings.

Every part of the daemon takes plain values; this module turns the settings into them and
connects the parts, each built once and in the order they depend on each other:

    client options -> producer (outputs) -> checkpoint (writes the changelog through it)
                   -> restorer (reads the changelog) -> rebalance callbacks
    wire formats (registry) -> decoder -> intake, and the evaluation encoder
    model file -> evaluator and reloader;  back-pressure;  telemetry
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import cast

from casewatch.daemon.backpressure import BackPressure
from casewatch.daemon.changelog_buffer import ChangelogBuffer
from casewatch.daemon.checkpoint import Checkpoint
from casewatch.daemon.decode import EventDecoder, FieldNames
from casewatch.daemon.intake import Intake, consume_error
from casewatch.daemon.loop import Daemon
from casewatch.daemon.model_reload import ModelFile, ModelReloader
from casewatch.daemon.parts import EvaluationEncoder, Evaluator, LoopOptions, Parts, StopRequest
from casewatch.daemon.rebalance import Rebalance, report
from casewatch.daemon.startup import prepare_topics
from casewatch.daemon.wire_formats import (
    alert_encoder,
    evaluation_encoder,
    event_decoder,
    invalid_reasons,
)
from casewatch.kafka.config import (
    admin_config,
    consumer_config,
    producer_config,
    restore_consumer_config,
)
from casewatch.kafka.producer import OutputProducer
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.settings import Settings
from casewatch.state.changelog import ChangelogTopic, write_changes
from casewatch.state.restore import Restorer
from casewatch.telemetry.loop_metrics import LoopMetrics
from casewatch.telemetry.metrics import Telemetry

# A back-pressure drain is bounded by the batch wait, but never shorter than this: each drain
# must leave time for delivery reports to arrive.
_SHORTEST_DRAIN_SECONDS = 0.1


def model_file(settings: Settings) -> ModelFile:
    return ModelFile(settings.model_path, settings.contract_path, settings.intra_op_threads)


def load_evaluator(settings: Settings) -> StreamingEvaluator:
    """The evaluator the settings describe; raises ModelError when the model cannot be used."""
    return StreamingEvaluator(
        model_file(settings).load(),
        score_on_every_event=settings.score_policy != "close",
        end_activities=settings.end_activities,
        idle_ttl=settings.idle_ttl_seconds,
        idle_quiet=settings.idle_quiet,
        max_open_cases=settings.max_open_cases,
        explanation_top_k=settings.explanation_top_k,
        track_changes=True,
        isolate_scoring_failures=True,
        alert_after=settings.alert_after if settings.alert_topic is not None else None,
        incremental=settings.incremental_scoring,
    )


def start_telemetry(settings: Settings, evaluator: Evaluator) -> tuple[Telemetry, str, int]:
    """Metrics and probes, served before the daemon starts; returns them with host and port."""
    telemetry = Telemetry(
        invalid_reasons=invalid_reasons(settings.input_format), drift_window=settings.drift_window
    )
    identity = evaluator.identity
    telemetry.set_model(
        identity.name, identity.version, identity.sha256, threshold=evaluator.threshold
    )
    telemetry.drift.bind(evaluator.routing_counts)
    telemetry.drift.use_model(evaluator.scorer.training_summary, identity.name)
    telemetry.set_model_loaded(True)
    host, port = telemetry.serve(settings.metrics_host, settings.metrics_port)
    return telemetry, host, port


def field_names(settings: Settings) -> FieldNames:
    return FieldNames(
        case_id=settings.case_id_field,
        activity=settings.activity_field,
        timestamp=settings.timestamp_field,
        attributes=settings.attributes_field,
        close=settings.close_field,
    )


def changelog_topic(settings: Settings) -> ChangelogTopic:
    # Only the default name has a predecessor: an explicitly named changelog is what it says.
    legacy = settings.legacy_changelog if settings.changelog_topic is None else None
    return ChangelogTopic(settings.changelog, settings.input_topic, legacy)


def loop_options(settings: Settings) -> LoopOptions:
    return LoopOptions(
        input_topic=settings.input_topic,
        output_topic=settings.output_topic,
        dead_letter_topic=settings.dlq_topic,
        changelog_topic=settings.changelog,
        consumer_config=consumer_config(settings.client_options()),
        max_batch_size=settings.max_batch_size,
        max_batch_wait=settings.max_batch_wait_ms / 1000,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        exactly_once=settings.processing_guarantee == "exactly_once",
        alert_topic=settings.alert_topic,
    )


def build_daemon(settings: Settings, evaluator: Evaluator, telemetry: Telemetry) -> Daemon:
    """The daemon the settings describe, around ``evaluator``, reporting to ``telemetry``."""
    options = loop_options(settings)
    clients = settings.client_options()
    stop = StopRequest()
    outputs = OutputProducer(
        producer_config(clients),
        max_pending=settings.max_pending_outputs,
        dead_letter_topic=settings.dlq_topic,
    )
    checkpoint = _checkpoint(settings, evaluator)
    restorer = Restorer(
        settings.changelog,
        restore_consumer_config(clients),
        evaluator,
        batch_size=settings.restore_batch_size,
    )
    metrics = LoopMetrics(telemetry, evaluator, outputs)
    rebalance = _rebalance(settings, options, checkpoint, outputs, evaluator, restorer, metrics)
    parts = Parts(
        evaluator=evaluator,
        telemetry=telemetry,
        metrics=metrics,
        outputs=outputs,
        checkpoint=checkpoint,
        restorer=restorer,
        rebalance=rebalance,
        intake=Intake(
            _decoder(settings),
            outputs=outputs,
            dead_letter_topic=settings.dlq_topic,
            checkpoint=checkpoint,
            restorer=restorer,
            metrics=metrics,
            on_consume_error=consume_error,
        ),
        reloader=ModelReloader(
            model_file(settings),
            evaluator,
            telemetry,
            watch_interval=settings.model_watch_interval_seconds,
        ),
        back_pressure=BackPressure(
            outputs,
            settings.input_topic,
            held=lambda: restorer.partitions,
            drain_seconds=max(options.max_batch_wait, _SHORTEST_DRAIN_SECONDS),
            stopping=stop,
            report=telemetry.paused.set,
        ),
        stop=stop,
        prepare_topics=_topics_check(settings, stop, telemetry),
        encoder=_encoder(settings),
        alert_encoder=alert_encoder(
            settings.output_format, topic=settings.alert_topic, registry=settings.registry_config()
        ),
    )
    return Daemon(options, parts)


def _decoder(settings: Settings) -> EventDecoder:
    return event_decoder(
        settings.input_format,
        field_names(settings),
        topic=settings.input_topic,
        max_message_bytes=settings.max_message_bytes,
        registry=settings.registry_config(),
        protobuf_message=settings.protobuf_message,
    )


def _encoder(settings: Settings) -> EvaluationEncoder | None:
    return evaluation_encoder(
        settings.output_format, topic=settings.output_topic, registry=settings.registry_config()
    )


def _checkpoint(settings: Settings, evaluator: Evaluator) -> Checkpoint:
    changelog = ChangelogBuffer()
    # write_changes only calls produce: the buffer takes the records for the checkpoint to hand
    # to the producer in slices.
    write = functools.partial(
        write_changes, settings.changelog, evaluator, cast(OutputProducer, changelog)
    )
    return Checkpoint(
        settings.input_topic,
        interval=settings.commit_interval_seconds,
        write_changelog=write,
        buffer=changelog,
    )


def _topics_check(
    settings: Settings, stop: StopRequest, telemetry: Telemetry
) -> Callable[[], int | None]:
    return functools.partial(
        prepare_topics,
        settings.input_topic,
        changelog_topic(settings),
        admin_config(settings.client_options()),
        timeout=settings.startup_timeout_seconds,
        alert_topic=settings.alert_topic,
        stopping=stop,
        heartbeat=telemetry.heartbeat,
    )


def _rebalance(
    settings: Settings,
    options: LoopOptions,
    checkpoint: Checkpoint,
    outputs: OutputProducer,
    evaluator: Evaluator,
    restorer: Restorer,
    metrics: LoopMetrics,
) -> Rebalance:
    strategy = str(options.consumer_config.get("partition.assignment.strategy", ""))

    def counted(kind: str, partitions: set[int]) -> None:
        report(metrics, rebalance, restorer, kind, partitions)

    rebalance = Rebalance(
        checkpoint=checkpoint,
        outputs=outputs,
        evaluator=evaluator,
        restorer=restorer,
        out_of_range=settings.offset_out_of_range,
        cooperative="cooperative" in strategy,
        flush_timeout=settings.shutdown_timeout_seconds,
        counted=counted,
    )
    return rebalance


__all__ = [
    "build_daemon",
    "changelog_topic",
    "field_names",
    "load_evaluator",
    "loop_options",
    "model_file",
    "start_telemetry",
]

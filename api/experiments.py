"""The experiments API (editor role): create, list, read, start, pause, stop, ship, results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import Caller, allow
from api.deps import ExperimentsDep
from api.experiment_schemas import ExperimentIn, ExperimentOut, ShipIn
from api.fusion import _actor
from api.fusion_schemas import EvaluationOut
from api.params import RowIdPath
from medley.keys import Role

router = APIRouter(prefix="/v1/experiments", tags=["experiments"],
                   dependencies=[allow(Role.EDITOR)])


@router.post("", response_model=ExperimentOut, status_code=201)
def create(exps: ExperimentsDep, body: ExperimentIn, who: Caller) -> ExperimentOut:
    row = exps.create(body.spec(), _actor(who))
    return ExperimentOut.of(*exps.get(row.id))


@router.get("", response_model=list[ExperimentOut])
def listing(exps: ExperimentsDep) -> list[ExperimentOut]:
    return [ExperimentOut.of(row) for row in exps.listing()]


@router.get("/{experiment_id}", response_model=ExperimentOut)
def get(exps: ExperimentsDep, experiment_id: RowIdPath) -> ExperimentOut:
    return ExperimentOut.of(*exps.get(experiment_id))


@router.get("/{experiment_id}/results")
def results(exps: ExperimentsDep, experiment_id: RowIdPath) -> dict[str, Any]:
    """Per arm: users, exposures, coverage, latency, each metric's mean and, against control,
    the always-valid interval of the difference (absolute and relative) with its p-value; the
    sample-ratio check; guardrails; for interleaving, per-user wins and the verdict."""
    return exps.results(experiment_id)


@router.get("/{experiment_id}/timeline")
def timeline(exps: ExperimentsDep, experiment_id: RowIdPath,
             metric: Annotated[str, Query(max_length=32, description="a per-user metric")] = "ctr",
             points: Annotated[int, Query(ge=1, le=60)] = 12) -> dict[str, Any]:
    """The results recomputed at `points` evenly spaced times since the start: per arm its
    users and the metric's mean, and for treatment arms the always-valid interval of the
    relative difference against control at that time (what the console charts)."""
    return exps.timeline(experiment_id, metric, points)


@router.post("/{experiment_id}/evaluations", response_model=EvaluationOut, status_code=202)
def evaluate(exps: ExperimentsDep, experiment_id: RowIdPath, who: Caller) -> EvaluationOut:
    """Each arm's offline figures as a background job (poll `GET /v1/fusion/evaluations/{id}`;
    the result holds `arm:<name>` per arm): what the console shows beside the online ones."""
    return EvaluationOut.of(exps.evaluate(experiment_id, _actor(who)))


def _action(name: str) -> Any:
    def act(exps: ExperimentsDep, experiment_id: RowIdPath, who: Caller) -> ExperimentOut:
        exps.act(experiment_id, name, _actor(who))
        return ExperimentOut.of(*exps.get(experiment_id))

    act.__name__ = name
    return act


for _name in ("start", "pause", "stop"):
    router.post(f"/{{experiment_id}}/{_name}", response_model=ExperimentOut,
                name=_name)(_action(_name))


@router.post("/{experiment_id}/ship", response_model=ExperimentOut)
def ship(exps: ExperimentsDep, experiment_id: RowIdPath, body: ShipIn, who: Caller
         ) -> ExperimentOut:
    """The winner serves every user from now on; an arm with a fusion profile publishes it
    through the publish job."""
    exps.act(experiment_id, "ship", _actor(who), body.arm)
    return ExperimentOut.of(*exps.get(experiment_id))

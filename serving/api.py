"""`POST /v1/score` and `GET /v1/features/<product_id>`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from serving.errors import ApiError
from serving.features import FeaturesUnavailable, ProductFeatures, redefined_message
from serving.metrics import PREDICTIONS, SPIKES, STALENESS, UNSCORED
from serving.state import state
from tickstore.errors import shown

bp = Blueprint("api", __name__, url_prefix="/v1")

MAX_BATCH = 100
MAX_ID = 64  # characters of a product id (Coinbase's are ~10): a longer one is a mistake, not a product
FIELDS = ("product_id", "product_ids")


def _body() -> Any:
    """The request's body parsed as JSON, whatever the Content-Type says, or a 400 saying why not."""
    # `curl -d '{...}'` sends JSON as a form, so the Content-Type is not asked
    data = request.get_data()
    if not data.strip():
        raise ApiError(400, "bad_request", 'the body is empty: send {"product_id": "BTC-USD"}')
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, "bad_request", f"the body is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from exc
    except ValueError as exc:  # json.JSONDecodeError says where
        raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # a few thousand brackets fit in the 64 KiB a request may hold
        raise ApiError(400, "bad_request", "the body's JSON nests too deeply: send a flat object") from exc


def _products(body: Any) -> tuple[list[str], bool]:
    """The product ids of a score request, and whether it was a batch."""
    if not isinstance(body, dict):
        raise ApiError(
            400, "bad_request", 'send a JSON object: {"product_id": "BTC-USD"} or {"product_ids": [...]}'
        )
    unknown = [k for k in body if k not in FIELDS]
    if unknown:  # a misspelt field, or one a caller expects to change the answer: neither is read
        raise ApiError(
            400,
            "bad_request",
            f"unknown field(s) {', '.join(map(shown, unknown))}: a request holds product_id or product_ids only",
        )
    single, batch = body.get("product_id"), body.get("product_ids")
    if (single is None) == (batch is None):
        raise ApiError(
            400, "bad_request", "give exactly one of product_id (a string) or product_ids (a list)"
        )
    if single is not None:
        if not isinstance(single, str) or not single:
            several = (
                ': a list goes in product_ids, {"product_ids": [...]}' if isinstance(single, list) else ""
            )
            raise ApiError(
                400, "bad_request", f"product_id must be a non-empty string, e.g. BTC-USD{several}"
            )
        return [_checked(single)], False
    if not isinstance(batch, list) or not batch or not all(isinstance(p, str) and p for p in batch):
        one = ': one product goes in product_id, {"product_id": "..."}' if isinstance(batch, str) else ""
        raise ApiError(400, "bad_request", f"product_ids must be a non-empty list of non-empty strings{one}")
    if len(batch) > MAX_BATCH:
        raise ApiError(400, "bad_request", f"at most {MAX_BATCH} product_ids per request, got {len(batch)}")
    return [_checked(p) for p in batch], True


def _checked(product_id: str) -> str:
    """``product_id``, or a 400 when it is too long to be one."""
    if len(product_id) > MAX_ID:
        raise ApiError(
            400, "bad_request", f"a product id has at most {MAX_ID} characters, got {len(product_id):,}"
        )
    return product_id


def _read(products: list[str]) -> list[ProductFeatures]:
    """Online features of ``products``, in their order; 503 when the online store does not answer."""
    try:
        return state().features().read(products)
    except FeaturesUnavailable as exc:
        raise ApiError(503, "features_unavailable", str(exc)) from exc


def _store_empty() -> bool:
    """Whether the online store holds no product at all; asked once a request (a batch's unknown
    products share the answer)."""
    if "store_empty" not in g:
        g.store_empty = state().features().holds_nothing()
    return bool(g.store_empty)


def _unknown(unknown: list[str]) -> ApiError:
    """404 for products the online store has never seen, with the likeliest slip named."""
    message = f"no online features for {', '.join(map(shown, unknown))}"
    # on the error path only: one more read, for the likeliest slips (Coinbase's ids are upper case,
    # and hold no spaces)
    cased = sorted({p.strip().upper() for p in unknown if p != p.strip().upper()})
    if cased:
        try:
            known = [r.product_id for r in state().features().read(cased) if r.known]
        except FeaturesUnavailable:
            known = []
        if known:
            message += f" (product ids are exact, case and spaces: did you mean {', '.join(known)}?)"
            return ApiError(404, "unknown_product", message, unknown=unknown)
    if _store_empty():  # a scorer started before (or beside) any stream
        store = state().settings.online_store
        message += (
            f": the online store ({'Redis' if store == 'redis' else 'SQLite'}) holds no product's features "
            "yet. `tickstore stream` writes them: is it running, with this scorer's TICKSTORE_HOME and "
            "TICKSTORE_ONLINE_STORE?"
        )
    return ApiError(404, "unknown_product", message, unknown=unknown)


def _stale(stale: list[ProductFeatures]) -> ApiError:
    """503 for products whose every view is past its TTL: nothing recent to score on."""
    return ApiError(
        503,
        "stale_features",
        "every feature view is older than its TTL: is `tickstore stream` running and the feed live? "
        "Refusing to score on stale data.",
        products={r.product_id: {"age_s": r.age_s, "expired_views": r.expired_views} for r in stale},
    )


def _item_error(row: ProductFeatures, views: int) -> dict[str, Any] | None:
    """Why a product of a batch can't be scored (never seen, or all its ``views`` stale), as its place
    in the results says it; None when it can be."""
    if not row.known:
        e = _unknown([row.product_id])
        return {"status": e.status, "code": e.code, "message": e.message}
    if len(row.expired_views) == views:
        # the others are fresh: the stream runs, and this product's feed is quiet
        return {
            "status": 503,
            "code": "stale_features",
            "message": f"no tick of {row.product_id} for longer than every view's window: its features "
            "are past their TTL, so it is not scored (the batch's other products are: is it still in "
            "the feed?)",
            "age_s": row.age_s,
            "expired_views": row.expired_views,
        }
    return None


def _check(rows: list[ProductFeatures]) -> None:
    """Raise for the rows that can't be scored: 404 for products never seen, else 503 for stale ones."""
    unknown = [r.product_id for r in rows if not r.known]
    if unknown:
        raise _unknown(unknown)
    views = len(state().features().views)
    stale = [r for r in rows if len(r.expired_views) == views]
    if stale:
        raise _stale(stale)


def _as_of(event_time_us: int | None) -> str | None:
    if event_time_us is None:
        return None
    return datetime.fromtimestamp(event_time_us / 1e6, UTC).isoformat()


@bp.post("/score")
def score() -> Response:
    products, is_batch = _products(_body())
    holder = state().models
    model = holder.model
    if model is None:
        raise ApiError(503, "model_unavailable", holder.error or "no model loaded yet")
    t0 = time.perf_counter()
    # A feature the model reads but the service does not serve reached it as NaN: scores computed
    # on a column it never saw missing in training, with nothing said. Asked before the read: no
    # request can be scored then, whatever its products.
    try:
        features = state().features()
    except FeaturesUnavailable as exc:
        raise ApiError(503, "features_unavailable", str(exc)) from exc
    missing = features.unserved(model.features)
    if missing:
        raise ApiError(
            503,
            "model_features_unavailable",
            f"the model reads {', '.join(missing)}, which the online store's feature service does not "
            "serve: apply the feature repo the model was trained with (`tickstore feast apply`), or "
            "train on the current one",
            missing=missing,
        )
    changed = features.redefined(model.features, model.sql_fingerprints)
    if changed:
        raise ApiError(
            503, "feature_definitions_changed", redefined_message(changed, model.run_id), views=changed
        )
    rows = _read(products)
    # A batch scores the products it can and says per product why not for the others: one product
    # whose feed went quiet (or a typo) failed the whole basket. With none to score, or one product
    # asked for, the request fails as a whole.
    views = len(features.views)
    errors = (
        {i: e for i, r in enumerate(rows) if (e := _item_error(r, views)) is not None} if is_batch else {}
    )
    if len(errors) == len(rows) or not is_batch:
        _check(rows)
    scored = [r for i, r in enumerate(rows) if i not in errors]
    t1 = time.perf_counter()
    probabilities = iter(model.predict([r.values for r in scored]))
    g.server_timing = (
        f"features;dur={(t1 - t0) * 1000:.3f}, model;dur={(time.perf_counter() - t1) * 1000:.3f}"
    )
    results: list[dict[str, Any]] = []
    for i, r in enumerate(rows):
        if i in errors:
            UNSCORED.labels(errors[i]["code"]).inc()
            results.append({"product_id": r.product_id, "error": errors[i]})
            continue
        p = next(probabilities)
        spike = bool(p >= model.threshold)
        PREDICTIONS.observe(float(p))
        if spike:
            SPIKES.inc()
        if r.age_s is not None:
            STALENESS.observe(r.age_s)
        results.append(
            {
                "product_id": r.product_id,
                "probability": float(p),
                "spike": spike,
                "threshold": model.threshold,
                "model": model.described,
                "features": {f: r.values.get(f) for f in model.features},
                "feature_age_s": r.age_s,
                "features_as_of": _as_of(r.event_time_us),
                "expired_views": r.expired_views,
            }
        )
    return jsonify({"results": results} if is_batch else results[0])


# `path`: a product id may hold '/' (the sink takes `A/B`), which the default converter refused as a 404
@bp.get("/features/<path:product_id>", merge_slashes=False)  # "//" kept: a redirect was HTML
def features(product_id: str) -> Response:
    rows = _read([_checked(product_id)])
    _check(rows)
    (r,) = rows
    return jsonify(
        {
            "product_id": r.product_id,
            "features": r.values,
            "feature_age_s": r.age_s,
            "features_as_of": _as_of(r.event_time_us),
            "expired_views": r.expired_views,
        }
    )

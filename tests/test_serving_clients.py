"""REST and gRPC clients against a loopback TF Serving double that answers through the C API."""

import socket
import threading
import time

import numpy as np
import pytest

from seqclf.serving import capi, export
from seqclf.serving.client import (
    GrpcClient,
    Prediction,
    RestClient,
    ServingClient,
    ServingError,
    b64,
    predict_texts,
)
from tests.serving_double import LABELS, ServingDouble, tiny_run

NAME = "tiny"
TEXTS = ["the movie was great and fun", "", "a dull boring plot", "naïve 😀"]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    r = tiny_run(seed=1)
    base = tmp_path_factory.mktemp("served") / NAME
    path = export.export_saved_model(
        r.model, r.vectorizer, r.label_names, r.max_length, str(base), validate=False
    )
    with capi.CApiHarness() as h:
        h.load(path)
        yield h


@pytest.fixture(scope="module")
def server(harness):
    with ServingDouble(harness, NAME, version=1) as double:
        yield double


@pytest.fixture
def rest(server):
    return RestClient(f"127.0.0.1:{server.rest_port}", timeout=10, retries=2, backoff=0.05)


@pytest.fixture
def grpc_client(server):
    with GrpcClient(f"127.0.0.1:{server.grpc_port}", timeout=10, retries=2, backoff=0.05) as c:
        yield c


@pytest.fixture
def expected(harness):
    return harness.predict(TEXTS)


# --- REST ---------------------------------------------------------------------------------------


def test_rest_predict_rows(rest, expected):
    response = rest.predict_request(NAME, instances=TEXTS)
    rows = response["predictions"]
    assert len(rows) == len(TEXTS)
    np.testing.assert_allclose(
        [r["probabilities"] for r in rows], expected["probabilities"], atol=1e-6
    )
    assert [r["class_id"] for r in rows] == expected["class_id"].tolist()
    assert [r["label"] for r in rows] == [s.decode() for s in expected["label"]]


def test_rest_predict_columns_and_b64(rest, expected):
    response = rest.predict_request(
        NAME, inputs={"text": [b64(t.encode("utf-8")) for t in TEXTS]}, version=1
    )
    outputs = response["outputs"]
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=1e-6)
    assert outputs["class_id"] == expected["class_id"].tolist()


def test_rest_classify(rest, expected):
    response = rest.classify_request(NAME, [{"text": t} for t in TEXTS])
    rows = response["result"]
    assert [[label for label, _ in row] for row in rows] == [LABELS] * len(TEXTS)
    np.testing.assert_allclose(
        [[score for _, score in row] for row in rows], expected["probabilities"], atol=1e-6
    )


def test_rest_status_and_metadata(rest):
    status = rest.status(NAME)
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert rest.status(NAME, version=1)["model_version_status"][0]["version"] == "1"
    sigs = rest.metadata(NAME)["metadata"]["signature_def"]["signature_def"]
    assert sigs["serving_default"]["inputs"]["text"]["dtype"] == "DT_STRING"
    assert sigs["classify"]["method_name"] == "tensorflow/serving/classify"


def test_rest_errors_carry_server_message(rest):
    with pytest.raises(ServingError) as info:
        rest.predict_request(NAME, inputs={"text": [["rank", "two"]]})
    assert info.value.status == 400
    assert "input must be a vector" in info.value.server_message
    with pytest.raises(ServingError) as info:
        rest.status(NAME, version=7)
    assert info.value.status == 404 and "Servable not found" in str(info.value)
    with pytest.raises(ServingError, match="Servable not found"):
        rest.predict_request("other", instances=["x"])


def test_rest_retries_503(server, rest):
    before = server.requests["rest"]
    server.fail_next("rest", times=2)
    assert len(rest.predict_request(NAME, instances=["great"])["predictions"]) == 1
    assert server.requests["rest"] - before == 3


def test_rest_gives_up_after_bounded_retries(server):
    client = RestClient(f"127.0.0.1:{server.rest_port}", retries=1, backoff=0.01)
    server.fail_next("rest", times=2)
    with pytest.raises(ServingError, match="gave up after 2 attempts") as info:
        client.predict_request(NAME, instances=["great"])
    assert info.value.status == 503 and "overloaded" in info.value.server_message


def test_rest_timeout():
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        client = RestClient(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.3, retries=3)
        start = time.monotonic()
        with pytest.raises(ServingError, match="timed out"):
            client.status(NAME)
        assert time.monotonic() - start < 5


# --- gRPC ---------------------------------------------------------------------------------------


def test_grpc_predict(grpc_client, expected):
    texts = np.array([t.encode() for t in TEXTS], dtype=object)
    out = grpc_client.predict_request(NAME, {"text": texts})
    np.testing.assert_allclose(out["probabilities"], expected["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(out["class_id"], expected["class_id"])
    only = grpc_client.predict_request(NAME, {"text": texts}, version=1, output_filter=["label"])
    assert list(only) == ["label"]


def test_grpc_classify(grpc_client, expected):
    rows = grpc_client.classify(NAME, TEXTS)
    assert [[label for label, _ in row] for row in rows] == [LABELS] * len(TEXTS)
    np.testing.assert_allclose(
        [[s for _, s in row] for row in rows], expected["probabilities"], atol=1e-6
    )


def test_grpc_status_and_metadata(grpc_client):
    assert grpc_client.status(NAME) == [
        {"version": 1, "state": "AVAILABLE", "error_code": 0, "error_message": ""}
    ]
    sigs = grpc_client.metadata(NAME, version=1)
    assert set(sigs) == {"serving_default", "classify"}
    assert sigs["classify"].method_name == "tensorflow/serving/classify"


def test_grpc_errors_carry_server_message(grpc_client):
    with pytest.raises(ServingError) as info:
        grpc_client.predict_request(NAME, {"text": np.array([[b"rank", b"two"]], dtype=object)})
    assert info.value.status == "INVALID_ARGUMENT"
    assert "input must be a vector" in info.value.server_message
    with pytest.raises(ServingError) as info:
        grpc_client.status("other")
    assert info.value.status == "NOT_FOUND" and "Servable not found" in info.value.server_message
    assert str(info.value).startswith("gRPC ModelService/GetModelStatus to ")


def test_grpc_retries_unavailable(server, grpc_client):
    before = server.requests["grpc"]
    server.fail_next("grpc", times=1)
    assert grpc_client.status(NAME)[0]["state"] == "AVAILABLE"
    assert server.requests["grpc"] - before == 2


# --- the shared interface ----------------------------------------------------------------------


def test_clients_share_one_interface(rest, grpc_client, expected):
    assert isinstance(rest, ServingClient) and isinstance(grpc_client, ServingClient)
    by_rest, by_grpc = rest.predict(NAME, TEXTS), grpc_client.predict(NAME, TEXTS, version=1)
    for rows in (by_rest, by_grpc):
        assert type(rows) is list and len(rows) == len(TEXTS)
        for row in rows:
            assert type(row) is Prediction
            assert type(row.label) is str and type(row.class_id) is int
            assert type(row.probabilities) is list
            assert all(type(p) is float for p in row.probabilities)
        np.testing.assert_allclose(
            [r.probabilities for r in rows], expected["probabilities"], atol=1e-6
        )
        assert [r.class_id for r in rows] == expected["class_id"].tolist()
    assert [r.label for r in by_rest] == [r.label for r in by_grpc]
    by_rest, by_grpc = rest.classify(NAME, TEXTS), grpc_client.classify(NAME, TEXTS)
    for rows in (by_rest, by_grpc):
        assert type(rows) is list and len(rows) == len(TEXTS)
        for row in rows:
            assert type(row) is list and [label for label, _ in row] == LABELS
            assert all(type(pair) is tuple and type(pair[0]) is str and type(pair[1]) is float
                       for pair in row)
    np.testing.assert_allclose(
        [[s for _, s in row] for row in by_rest], [[s for _, s in row] for row in by_grpc],
        atol=1e-6,
    )
    assert rest.predict(NAME, []) == grpc_client.predict(NAME, []) == []


# --- late start and predict_texts ---------------------------------------------------------------


def test_clients_wait_for_late_server(harness):
    double = ServingDouble(harness, NAME)
    timer = threading.Timer(0.6, double.start)
    timer.start()
    try:
        rows = predict_texts(
            f"127.0.0.1:{double.rest_port}", NAME, ["great"], retries=6, backoff=0.1
        )
        assert len(rows) == 1
        rows = predict_texts(
            f"127.0.0.1:{double.grpc_port}", NAME, ["great"], grpc=True, retries=6, backoff=0.1
        )
        assert len(rows) == 1
    finally:
        timer.join()
        double.stop()


@pytest.mark.parametrize("use_grpc", [False, True], ids=["rest", "grpc"])
def test_predict_texts(server, expected, use_grpc):
    port = server.grpc_port if use_grpc else server.rest_port
    rows = predict_texts(f"127.0.0.1:{port}", NAME, TEXTS, grpc=use_grpc, version=1)
    assert len(rows) == len(TEXTS)
    for row, probs, class_id, label in zip(
        rows, expected["probabilities"], expected["class_id"], expected["label"], strict=True
    ):
        assert list(row["probabilities"]) == LABELS
        np.testing.assert_allclose(list(row["probabilities"].values()), probs, atol=1e-6)
        assert row["class_id"] == class_id and row["label"] == label.decode()
    assert predict_texts(f"127.0.0.1:{port}", NAME, [], grpc=use_grpc) == []


def test_predict_texts_unknown_model(server):
    with pytest.raises(ServingError, match="Servable not found"):
        predict_texts(f"127.0.0.1:{server.rest_port}", "nope", ["x"])

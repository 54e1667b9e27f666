"""Clients for a TensorFlow Serving model server: REST (standard library only) and gRPC.

Both clients are `ServingClient`s: `predict(model_name, texts)` returns one `Prediction` per text
and `classify(model_name, texts)` one list of `(label, score)` pairs per text, whichever protocol
carries them. The protocol's own requests and answers (JSON for REST, tensors and protos for
gRPC) are `predict_request` / `classify_request`; `status` and `metadata` answer in the
protocol's own form too.

Both clients retry requests the server could not take (connection refused/reset, HTTP 502/503/504,
gRPC UNAVAILABLE) a bounded number of times with exponential backoff, apply a per-request
timeout, and raise `ServingError` carrying the server's own error message otherwise.

`predict_texts` is what `seqclf predict --server HOST:PORT [--grpc] --model-name NAME TEXT...`
calls.
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import json
import random
import socket
import time
import urllib.error
import urllib.request

from seqclf._checks import check_positive_number
from seqclf.errors import SeqclfError

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.2
RETRY_HTTP_STATUSES = frozenset({502, 503, 504})


class ServingError(SeqclfError):
    """A request the model server refused or could not answer.

    Attributes:
        status: HTTP status code (REST) or gRPC status code name (gRPC); None when no answer came.
        server_message: the server's error message, verbatim.
    """

    def __init__(self, message, status=None, server_message=None):
        super().__init__(message)
        self.status = status
        self.server_message = server_message


def _sleep_backoff(attempt, backoff):
    # Exponential backoff with jitter, so several clients retrying do not hit the server in step.
    time.sleep(backoff * (2**attempt) * (0.5 + random.random() / 2))


def _check_retry_args(timeout, retries, backoff):
    check_positive_number("timeout", timeout, unit="seconds")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        raise SeqclfError(f"`retries` must be an int in [0, 20]. Received: retries={retries!r}")
    if backoff < 0:
        raise SeqclfError(f"`backoff` must be >= 0. Received: backoff={backoff!r}")


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One text's prediction: the label, its class index and every class's probability."""

    label: str
    class_id: int
    probabilities: list[float]


class ServingClient(abc.ABC):
    """What the REST and gRPC clients share: texts in, the same Python types out."""

    @abc.abstractmethod
    def predict(self, model_name, texts, version=None):
        """`serving_default` on `texts` (strings): a list of `Prediction`, one per text."""

    @abc.abstractmethod
    def classify(self, model_name, texts, version=None):
        """The `classify` signature on `texts`: per text, a list of `(label, score)` pairs in the
        model's class order."""

    @abc.abstractmethod
    def close(self):
        """Releases the client's connections."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _texts(texts):
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise SeqclfError(f"`texts` must be strings. Received: texts={texts!r}")
    return texts


def _model_path(model_name, version):
    if not model_name or "/" in model_name or ":" in model_name:
        raise SeqclfError(f"Invalid model name. Received: model_name={model_name!r}")
    path = f"/v1/models/{urllib.request.quote(model_name)}"
    if version is not None:
        path += f"/versions/{int(version)}"
    return path


class RestClient(ServingClient):
    """TF Serving REST API client (`http://HOST:PORT`, port 8501 by default in TF Serving).

    Args:
        server: "host:port" or "http://host:port".
        timeout: seconds per HTTP request.
        retries: extra attempts after an unavailable answer.
        backoff: base delay in seconds, doubled at each retry.
    """

    def __init__(
        self, server, timeout=DEFAULT_TIMEOUT, retries=DEFAULT_RETRIES, backoff=DEFAULT_BACKOFF
    ):
        _check_retry_args(timeout, retries, backoff)
        self.base_url = server if server.startswith(("http://", "https://")) else f"http://{server}"
        self.base_url = self.base_url.rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff

    def _request(self, method, path, body=None):
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                _sleep_backoff(attempt - 1, self.backoff)
            request = urllib.request.Request(url, data=data, method=method)
            if data is not None:
                request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as e:
                raw = e.read()
                try:
                    message = json.loads(raw).get("error", raw.decode("utf-8", "replace"))
                except (ValueError, AttributeError):
                    message = raw.decode("utf-8", "replace") or e.reason
                last = ServingError(
                    f"{method} {url} failed with HTTP {e.code}: {message}",
                    status=e.code,
                    server_message=message,
                )
                if e.code not in RETRY_HTTP_STATUSES:
                    raise last from None
            except TimeoutError as e:
                raise ServingError(
                    f"{method} {url} timed out after {self.timeout} s: {e}"
                ) from None
            except (urllib.error.URLError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    raise ServingError(f"{method} {url} timed out after {self.timeout} s") from None
                last = ServingError(f"{method} {url}: server unavailable: {reason}")
        raise ServingError(
            f"{last} (gave up after {self.retries + 1} attempts)",
            status=last.status,
            server_message=last.server_message,
        )

    def predict(self, model_name, texts, version=None):
        texts = _texts(texts)
        if not texts:
            return []
        response = self.predict_request(model_name, instances=texts, version=version)
        predictions = response.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(texts):
            raise ServingError(
                "Unexpected predict response: expected one prediction per text. "
                f"Received: {json.dumps(response)[:500]}"
            )
        return [
            Prediction(str(p["label"]), int(p["class_id"]), [float(x) for x in p["probabilities"]])
            for p in predictions
        ]

    def classify(self, model_name, texts, version=None):
        response = self.classify_request(model_name, [{"text": t} for t in _texts(texts)],
                                         version=version)
        rows = response.get("result", response.get("results"))
        return [[(str(label), float(score)) for label, score in row] for row in rows]

    def predict_request(self, model_name, instances=None, inputs=None, signature_name=None,
                        version=None):
        """`POST .../NAME[/versions/N]:predict` with row (`instances`) or columnar (`inputs`) data.

        Returns the decoded JSON response (`predictions` or `outputs`).
        """
        if (instances is None) == (inputs is None):
            raise SeqclfError(
                "Pass exactly one of `instances` (row format) and `inputs` (columnar format). "
                f"Received: instances={instances is not None}, inputs={inputs is not None}"
            )
        body = {"instances": instances} if instances is not None else {"inputs": inputs}
        if signature_name:
            body["signature_name"] = signature_name
        return self._request("POST", _model_path(model_name, version) + ":predict", body)

    def classify_request(self, model_name, examples, signature_name="classify", version=None):
        """`POST .../NAME[/versions/N]:classify`; `examples` are dicts of feature values."""
        body = {"examples": examples}
        if signature_name:
            body["signature_name"] = signature_name
        return self._request("POST", _model_path(model_name, version) + ":classify", body)

    def status(self, model_name, version=None):
        """`GET /v1/models/NAME[/versions/N]`: the GetModelStatusResponse as JSON."""
        return self._request("GET", _model_path(model_name, version))

    def metadata(self, model_name, version=None):
        """`GET /v1/models/NAME[/versions/N]/metadata`: signatures as JSON."""
        return self._request("GET", _model_path(model_name, version) + "/metadata")

    def close(self):
        pass  # urllib opens a connection per request: nothing stays open.


def b64(data):
    """TF Serving's JSON encoding of binary strings: `{"b64": ...}`."""
    return {"b64": base64.b64encode(data).decode("ascii")}


class GrpcClient(ServingClient):
    """TF Serving gRPC client (PredictionService and ModelService; port 8500 by default).

    Args: as `RestClient`, with `server` as "host:port".
    """

    def __init__(
        self, server, timeout=DEFAULT_TIMEOUT, retries=DEFAULT_RETRIES, backoff=DEFAULT_BACKOFF
    ):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        _check_retry_args(timeout, retries, backoff)
        self._grpc = grpc
        self.target = server.split("://", 1)[-1]
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.channel = grpc.insecure_channel(
            self.target,
            # Large batches of probabilities exceed gRPC's default 4 MiB receive limit.
            options=[("grpc.max_receive_message_length", 256 << 20)],
        )
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def _call(self, stub, name, request):
        """`stub.name(request)`, retried while the server is UNAVAILABLE."""
        grpc = self._grpc
        method = getattr(stub, name)
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                _sleep_backoff(attempt - 1, self.backoff)
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as e:
                code = e.code()
                details = e.details() or ""
                last = ServingError(
                    f"gRPC {type(stub).__name__.removesuffix('Stub')}/{name} to {self.target} "
                    f"failed with {code.name}: {details}",
                    status=code.name,
                    server_message=details,
                )
                if code != grpc.StatusCode.UNAVAILABLE:
                    raise last from None
        raise ServingError(
            f"{last} (gave up after {self.retries + 1} attempts)",
            status=last.status,
            server_message=last.server_message,
        )

    @staticmethod
    def _spec(spec, model_name, version, signature_name):
        spec.name = model_name
        if version is not None:
            spec.version.value = int(version)
        if signature_name:
            spec.signature_name = signature_name

    def predict(self, model_name, texts, version=None):
        texts = _texts(texts)
        if not texts:
            return []
        out = self.predict_request(
            model_name, {"text": [t.encode("utf-8") for t in texts]}, version=version
        )
        return [
            Prediction(
                out["label"][i].decode("utf-8"),
                int(out["class_id"][i]),
                [float(p) for p in out["probabilities"][i]],
            )
            for i in range(len(texts))
        ]

    def classify(self, model_name, texts, version=None):
        return self.classify_request(model_name, _texts(texts), version=version)

    def predict_request(
        self, model_name, inputs, signature_name="serving_default", version=None, output_filter=None
    ):
        """Predict; `inputs`: {key: array-like}. Returns {output key: numpy array}."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model_name, version, signature_name)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter or [])
        response = self._call(self.prediction, "Predict", request)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def classify_request(self, model_name, texts, signature_name="classify", version=None):
        """Classify texts (sent as tf.Examples with a `text` bytes feature).

        Returns one list of (label, score) pairs per text.
        """
        from tensorflow_serving.apis import classification_pb2

        request = classification_pb2.ClassificationRequest()
        self._spec(request.model_spec, model_name, version, signature_name)
        for text in texts:
            example = request.input.example_list.examples.add()
            data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            example.features.feature["text"].bytes_list.value.append(data)
        response = self._call(self.prediction, "Classify", request)
        return [
            [(c.label, float(c.score)) for c in row.classes]
            for row in response.result.classifications
        ]

    def status(self, model_name, version=None):
        """ModelService.GetModelStatus: one dict per version.

        Keys: "version", "state", "error_code", "error_message".
        """
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model_name, version, None)
        response = self._call(self.models, "GetModelStatus", request)
        return [
            {
                "version": s.version,
                "state": get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                "error_code": s.status.error_code,
                "error_message": s.status.error_message,
            }
            for s in response.model_version_status
        ]

    def metadata(self, model_name, version=None):
        """PredictionService.GetModelMetadata: {signature key: SignatureDef proto}."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec, model_name, version, None)
        request.metadata_field.append("signature_def")
        response = self._call(self.prediction, "GetModelMetadata", request)
        sigs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sigs)
        return dict(sigs.signature_def)

    def close(self):
        self.channel.close()


def _label_names(client, model_name, version):
    """The model's class labels in output order, from its `classify` signature (one blank text)."""
    try:
        return [label for label, _ in client.classify(model_name, [""], version=version)[0]]
    except ServingError:
        return None  # a model without the classify signature: probabilities stay a list


def predict_texts(
    server,
    model_name,
    texts,
    grpc=False,
    version=None,
    timeout=DEFAULT_TIMEOUT,
    retries=DEFAULT_RETRIES,
    backoff=DEFAULT_BACKOFF,
):
    """Classify `texts` with a seqclf export served by TF Serving at `server` ("host:port").

    Returns one dict per text, in order: `label` (str), `class_id` (int) and `probabilities`
    (dict label -> float in the model's class order; a list if the model has no `classify`
    signature to name the classes).
    """
    texts = _texts(texts)
    if not texts:
        return []
    client_class = GrpcClient if grpc else RestClient
    with client_class(server, timeout=timeout, retries=retries, backoff=backoff) as client:
        rows = [dataclasses.asdict(p) for p in client.predict(model_name, texts, version=version)]
        names = _label_names(client, model_name, version)
    if names and all(len(r["probabilities"]) == len(names) for r in rows):
        for r in rows:
            r["probabilities"] = dict(zip(names, r["probabilities"], strict=True))
    return rows

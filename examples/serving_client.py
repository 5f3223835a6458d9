"""Query a defended model behind TF Serving.

Export and serve (Docker, CPU image):

    tfdefense export aegan_mnist /tmp/serving
    docker run -p 8500:8500 -p 8501:8501 \
        --mount type=bind,source=/tmp/serving/aegan_mnist,target=/models/aegan_mnist \
        -e MODEL_NAME=aegan_mnist tensorflow/serving

Then this script builds a gRPC `PredictRequest` (tensorflow-serving-api) for
a few test images, prints the equivalent REST body, and sends the request
when ``--server`` is given:

    python examples/serving_client.py --n=2                       # build and print only
    python examples/serving_client.py --server=localhost:8500     # also send it
"""

import argparse
import json

import numpy as np
import tensorflow as tf


def build_predict_request(images, model_name="aegan_mnist", signature="serving_default"):
    """A `PredictRequest` for float32 images [N, 28, 28, 1] in [0, 1]."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images, np.float32)))
    return request


def rest_body(images, signature="serving_default"):
    """The JSON body for POST /v1/models/<name>:predict."""
    return {"signature_name": signature, "instances": np.asarray(images, np.float32).tolist()}


def send(request, server, timeout=60.0):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server))
    response = stub.Predict(request, timeout)
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="aegan_mnist")
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--server", default=None, help="host:port of TF Serving's gRPC endpoint")
    parser.add_argument("--body", default="body.json", help="where to write the REST body")
    args = parser.parse_args()

    from tfdefense import datasets

    x, _ = datasets.load("mnist" if args.model.endswith("mnist") and "fmnist" not in args.model
                         else "fashion_mnist", "dev")
    request = build_predict_request(x[:args.n], args.model)
    print(f"PredictRequest for {args.model}: inputs['images'] shape "
          f"{[d.size for d in request.inputs['images'].tensor_shape.dim]}, {request.ByteSize()} bytes")
    with open(args.body, "w") as f:
        json.dump(rest_body(x[:1]), f)
    print(f"REST: curl -d @{args.body} http://localhost:8501/v1/models/{args.model}:predict   "
          f"(wrote the body for one image to {args.body})")
    if args.server:
        import grpc

        try:
            outputs = send(request, args.server)
        except grpc.RpcError as e:
            raise SystemExit(f"No TF Serving answered at {args.server} ({e.code().name}): start it with the "
                             "docker command at the top of this file, or leave out --server.") from None
        print({k: v.tolist() for k, v in outputs.items() if k in ("label", "is_adversarial")})


if __name__ == "__main__":
    main()

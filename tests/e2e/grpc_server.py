"""A gRPC server over TLS for tests/e2e/test_http2.py, with no generated
code: /test.Echo/Unary answers one message, /test.Echo/Stream three; the
messages are protobuf wire bytes written by hand. Prints READY PORT."""
import sys
from concurrent import futures

import grpc

REPLY = b"\x0a\x05world\x10\x2a"                 # 1: "world", 2: 42
STREAM = [b"\x08" + bytes([i]) + b"\x12\x03" + b"n=%d" % i for i in (1, 2, 3)]


def unary(request, context):
    context.set_trailing_metadata((("x-served-by", "grpc-test"),))
    return REPLY


def stream(request, context):
    for m in STREAM:
        yield m


def main():
    pem = sys.argv[1]
    key_cert = open(pem, "rb").read()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ident = lambda b: b
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, ident, ident),
    })
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials([(key_cert, key_cert)])
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    print("READY %d" % port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

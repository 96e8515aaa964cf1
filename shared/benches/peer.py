"""The peer of `benches/webhook_peer.rs`: the official Razorpay Python SDK's webhook check
(`Utility.verify_webhook_signature`) plus `json.loads`, on the same body, secret and
signature. Prints nanoseconds per operation (the best of several timed rounds)."""

import json
import sys
import timeit

import razorpay

body_path, secret, signature, rounds, number = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
body = open(body_path, encoding="utf-8").read()
client = razorpay.Client(auth=("rzp_test_bench", "bench"))


def verify_and_parse():
    client.utility.verify_webhook_signature(body, signature, secret)
    return json.loads(body)


verify_and_parse()  # raises if the signature were wrong
best = min(timeit.repeat(verify_and_parse, repeat=rounds, number=number))
print(int(best / number * 1e9))

#!/usr/bin/env python3
"""Writes the sample Lambda events of this folder (see README.md).

They are made for the local stack's documented test identity (`local_stack::Options::events`):
tenant `demo`, environment `sandbox`, the API key, webhook secrets and Razorpay account below.
Signatures are computed here, over the exact body bytes. Run it again after changing it:

    python3 events/generate.py
"""

import base64
import hashlib
import hmac
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent

TENANT, ENVIRONMENT = "demo", "sandbox"
API_KEY = "fxr_local_events_key_do_not_use_in_production_00"
WEBHOOK_SECRET = "flexrzp_local_webhook_secret"
FLEXPRICE_WEBHOOK_SECRET = "whsec_ZmxleHJ6cF9sb2NhbF9mbGV4cHJpY2Vfc2VjcmV0"
RAZORPAY_KEY_ID = "rzp_test_localdemo"
RAZORPAY_KEY_SECRET = "flexrzp_local_razorpay_key_secret"
FLEXPRICE_API_KEY = "fp_flexrzp_local_api_key"
RAZORPAY_ACCOUNT_ID = "acc_FlexrzpLocal01"
INR_INVOICE, USD_INVOICE = "inv_local_inr_0001", "inv_local_usd_0001"
IDEMPOTENCY_KEY = "events-demo-payment"
# 2026-11-25T10:00:05Z: when the files were signed.
EPOCH = 1795600805


def payment_id(key):
    """`shared::payments::payment_id_for`: fxp_ + 24 hex of sha256(tenant, env, key)."""
    digest = hashlib.sha256()
    for part in (TENANT, ENVIRONMENT, key):
        digest.update(part.encode() + b"\0")
    return "fxp_" + digest.hexdigest()[:24]


# A caller's key lives in its own namespace (`PaymentKey::Caller`): `caller:{key}`.
PAYMENT_ID = payment_id("caller:" + IDEMPOTENCY_KEY)


def http_event(method, template, params, headers, body=None):
    path = template
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    user_agent = headers.get("user-agent", "curl/8.5.0")
    event = {
        "version": "2.0",
        "routeKey": f"{method} {template}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": user_agent, **headers},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "52.66.1.1", "userAgent": user_agent},
            "requestId": "Jd1bXg2",
            "routeKey": f"{method} {template}",
            "stage": "$default",
            "time": "25/Nov/2026:10:00:05 +0000",
            "timeEpoch": EPOCH * 1000,
        },
        "isBase64Encoded": False,
    }
    if params:
        event["pathParameters"] = params
    if body is not None:
        event["body"] = body
        event["headers"]["content-type"] = "application/json"
    return event


def api(method, template, params=None, body=None):
    text = None if body is None else json.dumps(body, indent=2)
    return http_event(method, template, params or {}, {"x-api-key": API_KEY}, text)


def razorpay_webhook(body, event_id, secret=WEBHOOK_SECRET):
    text = json.dumps(body, separators=(",", ":"))
    signature = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    headers = {"user-agent": "Razorpay-Webhook/v1", "x-razorpay-signature": signature, "x-razorpay-event-id": event_id}
    params = {"tenant_id": TENANT, "environment_id": ENVIRONMENT}
    return http_event("POST", "/v1/webhooks/razorpay/{tenant_id}/{environment_id}", params, headers, text)


def flexprice_webhook(body, svix_id):
    text = json.dumps(body, separators=(",", ":"))
    key = base64.b64decode(FLEXPRICE_WEBHOOK_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{svix_id}.{EPOCH}.{text}".encode(), hashlib.sha256).digest()
    headers = {
        "user-agent": "Svix-Webhooks/1.0",
        "svix-id": svix_id,
        "svix-timestamp": str(EPOCH),
        "svix-signature": "v1," + base64.b64encode(mac).decode(),
    }
    params = {"tenant_id": TENANT, "environment_id": ENVIRONMENT}
    return http_event("POST", "/v1/webhooks/flexprice/{tenant_id}/{environment_id}", params, headers, text)


def captured():
    """The `payment.captured` Razorpay sends when the link of create-payment.json is paid."""
    return {
        "entity": "event", "account_id": RAZORPAY_ACCOUNT_ID, "event": "payment.captured",
        "contains": ["payment"],
        "payload": {"payment": {"entity": {
            "id": "pay_LocalEvents00001", "entity": "payment", "amount": 112050, "currency": "INR",
            "status": "captured", "order_id": "order_LocalEvents0001", "invoice_id": None,
            "international": False, "method": "upi", "amount_refunded": 0, "refund_status": None,
            "captured": True, "description": "#LocalEvents", "email": "ada@example.com",
            "contact": "+919876543210",
            "notes": {"flexprice_payment_id": PAYMENT_ID, "flexprice_invoice_id": INR_INVOICE,
                      "tenant_id": TENANT, "environment_id": ENVIRONMENT},
            "fee": 2645, "tax": 404, "error_code": None, "error_description": None,
            "created_at": EPOCH - 5}}},
        "created_at": EPOCH,
    }


def sqs(records):
    out = []
    for i, (message_id, body, kind) in enumerate(records):
        out.append({
            "messageId": message_id,
            "receiptHandle": f"AQEBlocal-receipt-handle-{i + 1}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(EPOCH * 1000),
                           "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": str(EPOCH * 1000 + 100)},
            "messageAttributes": {"kind": {"stringValue": kind, "stringListValues": [], "binaryListValues": [], "dataType": "String"}},
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:flexrzp-jobs",
            "awsRegion": "us-east-1",
        })
    return {"Records": out}


def job(kind, **fields):
    return json.dumps({"tenant_id": TENANT, "environment_id": ENVIRONMENT, "kind": kind, **fields}, separators=(",", ":"))


CONNECTION = {
    "key_id": RAZORPAY_KEY_ID, "key_secret": RAZORPAY_KEY_SECRET, "webhook_secret": WEBHOOK_SECRET,
    "flexprice_api_key": FLEXPRICE_API_KEY, "flexprice_webhook_secret": FLEXPRICE_WEBHOOK_SECRET,
    "invoice_outbound_sync": True, "razorpay_account_id": RAZORPAY_ACCOUNT_ID,
}
SEED_BODY = {
    "amount": 1120.50, "currency": "inr", "destination_id": INR_INVOICE, "destination_type": "INVOICE",
    "payment_method_type": "PAYMENT_LINK", "payment_gateway": "razorpay", "process_payment": True,
    "success_url": "https://example.com/paid", "cancel_url": "https://example.com/cancelled",
    "idempotency_key": IDEMPOTENCY_KEY,
}
SYNC = "/api/v1/invoices/{invoice_id}/sync"
bad = razorpay_webhook(captured(), "evt_LocalEventsBadSig", secret="not_the_webhook_secret")

EVENTS = {
    "put-connection.json": api("PUT", "/api/v1/connections/razorpay", body=CONNECTION),
    "get-connection.json": api("GET", "/api/v1/connections/razorpay"),
    "delete-connection.json": api("DELETE", "/api/v1/connections/razorpay"),
    "create-payment.json": api("POST", "/api/v1/payments", body=SEED_BODY),
    "get-payment.json": api("GET", "/api/v1/payments/{payment_id}", {"payment_id": PAYMENT_ID}),
    "post-invoice-sync.json": api("POST", SYNC, {"invoice_id": USD_INVOICE}),
    "get-invoice-sync.json": api("GET", SYNC, {"invoice_id": USD_INVOICE}),
    "razorpay-payment-captured.json": razorpay_webhook(captured(), "evt_LocalEvents00001"),
    "razorpay-bad-signature.json": bad,
    "flexprice-invoice-finalized.json": flexprice_webhook(
        {"event_type": "invoice.update.finalized", "invoice": {"id": USD_INVOICE, "invoice_status": "FINALIZED"}},
        "msg_LocalEvents00001"),
    "sqs-sync-invoice.json": sqs([("3f1c8a62-6a3e-4c43-9d43-0c4d8b5c2a11", job("sync_invoice", invoice_id=USD_INVOICE), "sync_invoice")]),
    "sqs-apply-razorpay-event.json": sqs([("5b0e1f7a-1c2d-4e5f-8a9b-0c1d2e3f4a51",
        job("apply_razorpay_event", event_id="evt_LocalEvents00001", body=json.dumps(captured(), separators=(",", ":"))),
        "apply_razorpay_event")]),
    "sqs-poison.json": sqs([
        ("7c2f3a4b-5d6e-4f70-8192-a3b4c5d6e7f8", job("sync_invoice", invoice_id=USD_INVOICE), "sync_invoice"),
        ("9d8e7f6a-5b4c-4d3e-2f1a-0b9c8d7e6f5a", "this is not a job", "poison"),
    ]),
}

for name, event in EVENTS.items():
    (HERE / name).write_text(json.dumps(event, indent=2) + "\n")
print(f"wrote {len(EVENTS)} events; the payment of create-payment.json is {PAYMENT_ID}")

"""Writes N unique signed BigCommerce deliveries (signature TAB body, a line each) for wrk,
signed with the seed's scheme: base64url, unpadded, HMAC-SHA256 of the raw body."""
import base64, hashlib, hmac, json, sys

secret, count, run = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3]
out = sys.stdout
for i in range(count):
    body = json.dumps({
        "scope": "store/order/created", "store_id": "1025646",
        "data": {"type": "order", "id": i}, "hash": f"{run}-{i}",
        "created_at": 1561479335, "producer": "stores/abc123",
    }, separators=(",", ":"))
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    out.write(base64.urlsafe_b64encode(mac).decode().rstrip("=") + "\t" + body + "\n")

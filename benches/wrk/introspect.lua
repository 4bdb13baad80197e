-- wrk script: POST /introspect of the token in $TOKEN, authenticated by
-- the Authorization header in $AUTH (a client's Basic credentials, or
-- "Bearer mcp_sk_..." with tokens:verify).
-- See docs/operations/performance.md for how it is run.
wrk.method = "POST"
wrk.body = "token=" .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("AUTH")

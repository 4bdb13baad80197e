-- wrk script: POST /token, grant_type=client_credentials, authenticated
-- by the Authorization header in $AUTH ("Basic base64(id:secret)").
-- See docs/operations/performance.md for how it is run.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("AUTH")

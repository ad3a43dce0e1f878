# Sourced by the scripts that start the service on PORT=0 (the system picks a free port).

# service_port LOG PID [SECONDS]: prints the port the service's `listening` line in LOG
# names, once it is there; prints nothing when PID exits first or SECONDS (default 30) pass.
service_port() {
    local log=$1 pid=$2 tries=$((${3:-30} * 10)) port=
    for _ in $(seq "$tries"); do
        port=$(sed -n 's/.*"message":"listening".*"port":\([0-9]*\).*/\1/p' "$log")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    printf '%s' "$port"
}

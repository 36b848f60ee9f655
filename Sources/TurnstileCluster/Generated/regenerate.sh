#!/usr/bin/env bash
# Regenerates the Swift code in this directory from etcd's protos (see README.md here).
#
#   bash Sources/TurnstileCluster/Generated/regenerate.sh
#
# Needs Debian's golang-etcd-server-dev (the .proto files), protobuf-compiler (protoc), git,
# python3 and the Swift toolchain; none of these is needed to build or test Turnstile, which
# compiles the committed output. The two protoc plugins are built from the very package
# versions Package.swift resolves (swift-protobuf's protoc-gen-swift, grpc-swift-protobuf's
# protoc-gen-grpc-swift-2), cloned and built in a scratch directory outside the repository
# ($SCRATCH, by default $TMPDIR/turnstile-etcd-protos), so the generated code matches the
# runtime it is compiled against.
#
# etcd's rpc.proto imports gogoproto and google.api annotations, which only the Go code and the
# HTTP gateway use. The script writes copies with those imports and options removed and keeps
# only the services, methods and messages TurnstileCluster calls (KEEP_* below); the copies
# stay in $SCRATCH. Only the generated Swift is committed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
etcd_src="${ETCD_SRC:-/usr/share/gocode/src/go.etcd.io/etcd}"
scratch="${SCRATCH:-${TMPDIR:-/tmp}/turnstile-etcd-protos}"
swift_protobuf_version="1.39.0"
grpc_swift_protobuf_version="2.4.1"

KEEP_SERVICES="KV:Range,Put,DeleteRange,Txn Lease:LeaseGrant,LeaseRevoke,LeaseKeepAlive,LeaseTimeToLive"
KEEP_MESSAGES="ResponseHeader RangeRequest RangeResponse PutRequest PutResponse DeleteRangeRequest
DeleteRangeResponse RequestOp ResponseOp Compare TxnRequest TxnResponse LeaseGrantRequest
LeaseGrantResponse LeaseRevokeRequest LeaseRevokeResponse LeaseKeepAliveRequest
LeaseKeepAliveResponse LeaseTimeToLiveRequest LeaseTimeToLiveResponse"

for tool in protoc git python3 swift; do
    command -v "$tool" >/dev/null || { echo "regenerate.sh: $tool is missing (apt-get install -y protobuf-compiler)" >&2; exit 1; }
done
[ -f "$etcd_src/etcdserver/etcdserverpb/rpc.proto" ] ||
    { echo "regenerate.sh: no etcd protos under $etcd_src (apt-get install -y golang-etcd-server-dev)" >&2; exit 1; }

mkdir -p "$scratch"

# The plugins, from the package versions Package.swift pins.
build_plugin() { # repository tag product
    local dir="$scratch/$(basename "$1")"
    [ -d "$dir" ] || git clone --quiet --depth 1 --branch "$2" "https://github.com/$1.git" "$dir" 2>/dev/null
    swift build -c release --package-path "$dir" --scratch-path "$dir/.build" --product "$3" >&2
    echo "$dir/.build/release/$3"
}
protoc_gen_swift="$(build_plugin apple/swift-protobuf "$swift_protobuf_version" protoc-gen-swift)"
protoc_gen_grpc="$(build_plugin grpc/grpc-swift-protobuf "$grpc_swift_protobuf_version" protoc-gen-grpc-swift-2)"

# The stripped copies, at the import paths rpc.proto uses.
protos="$scratch/proto"
rm -rf "$protos"
mkdir -p "$protos/etcd/mvcc/mvccpb" "$protos/etcd/etcdserver/etcdserverpb"
python3 - "$etcd_src" "$protos" "$KEEP_SERVICES" "$KEEP_MESSAGES" <<'PY'
import re, sys
source, out, keep_services, keep_messages = sys.argv[1:]
services = {name: set(methods.split(",")) for name, methods in (s.split(":") for s in keep_services.split())}
messages = set(keep_messages.split())

def strip_options(text):
    """Drops gogoproto and google.api imports and options (a google.api.http option spans lines)."""
    text = re.sub(r'^import "(gogoproto|google/api)/[^"]*";\n', "", text, flags=re.M)
    text = re.sub(r'^option \(gogoproto\.[^;]*;\n', "", text, flags=re.M)
    text = re.sub(r'\s*\[\(gogoproto\.[^\]]*\]', "", text)
    while (start := text.find("option (google.api.http)")) >= 0:
        end, depth = text.index("{", start), 0
        while True:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
            if depth == 0:
                break
        end = text.index(";", end) + 1
        line_start = text.rfind("\n", 0, start)
        text = text[:line_start] + text[end:]
    return re.sub(r'\{\s*\}', "{}", text)

def blocks(text):
    """Splits a file into (kind, name, text) top-level pieces; comments stay with what follows."""
    pieces, pending, i, lines = [], [], 0, text.split("\n")
    while i < len(lines):
        line = lines[i]
        m = re.match(r'(service|message|enum)\s+(\w+)\s*\{', line)
        if not m:
            pending.append(line)
            i += 1
            if not line.strip():
                pieces.append(("text", None, "\n".join(pending)))
                pending = []
            continue
        body, depth = [], 0
        while True:
            body.append(lines[i])
            depth += lines[i].count("{") - lines[i].count("}")
            i += 1
            if depth == 0:
                break
        comments = []
        while pending and pending[-1].lstrip().startswith("//"):
            comments.insert(0, pending.pop())
        if pending:
            pieces.append(("text", None, "\n".join(pending)))
        pending = []
        pieces.append((m.group(1), m.group(2), "\n".join(comments + body)))
    pieces.append(("text", None, "\n".join(pending)))
    return pieces

def keep_methods(service, text):
    """Keeps a service's listed rpcs, each with the comment lines above it."""
    lines = text.split("\n")
    out, chunk = [lines[0]], []
    for line in lines[1:-1]:
        chunk.append(line)
        m = re.match(r'\s*rpc\s+(\w+)', line)
        if m:
            if m.group(1) in services[service]:
                out.extend(([""] if len(out) > 1 else []) + chunk)
            chunk = []
        elif not line.strip():
            chunk = []
    return "\n".join(out + [lines[-1]])

kv = strip_options(open(f"{source}/mvcc/mvccpb/kv.proto").read())
open(f"{out}/etcd/mvcc/mvccpb/kv.proto", "w").write(kv)

rpc = strip_options(open(f"{source}/etcdserver/etcdserverpb/rpc.proto").read())
rpc = rpc.replace('import "etcd/auth/authpb/auth.proto";\n', "").replace("// for grpc-gateway\n", "")
kept = []
for kind, name, text in blocks(rpc):
    if kind == "text":
        if text.strip():
            kept.append(text.strip("\n"))
    elif kind == "service" and name in services:
        kept.append(keep_methods(name, text))
    elif kind in ("message", "enum") and name in messages:
        kept.append(text)
missing = messages - {name for kind, name, _ in blocks(rpc) if kind == "message"}
if missing:
    sys.exit(f"regenerate.sh: rpc.proto has no message {sorted(missing)}")
open(f"{out}/etcd/etcdserver/etcdserverpb/rpc.proto", "w").write("\n\n".join(kept) + "\n")
PY

# Internal visibility: the generated types stay inside TurnstileCluster.
rm -f "$here"/*.pb.swift "$here"/*.grpc.swift
protoc --proto_path="$protos" --plugin=protoc-gen-swift="$protoc_gen_swift" \
    --swift_out="$here" --swift_opt=Visibility=Internal,FileNaming=DropPath \
    etcd/mvcc/mvccpb/kv.proto etcd/etcdserver/etcdserverpb/rpc.proto
# kv.proto has no service: only rpc.proto gets a gRPC client (no server).
protoc --proto_path="$protos" --plugin=protoc-gen-grpc-swift-2="$protoc_gen_grpc" \
    --grpc-swift-2_out="$here" --grpc-swift-2_opt=Visibility=Internal,Client=true,Server=false,FileNaming=DropPath \
    etcd/etcdserver/etcdserverpb/rpc.proto
echo "regenerated: $(cd "$here" && ls *.swift | tr '\n' ' ')"

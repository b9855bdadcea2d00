#!/bin/sh
# binkube lab hosts only, never real machines: installed into the lab base rootfs as
# /usr/local/sbin/runc, which dockerd/containerd find before /usr/bin/runc on systemd's default
# PATH. It runs the real /usr/bin/runc after one change to what runc is asked to apply:
#
#   the machine running the lab has no CAP_SYS_RESOURCE in its capability bounding set and
#   cannot set a negative oom_score_adj, so runc fails on `--privileged` ("unable to apply caps:
#   operation not permitted") and on pods that kubelet gives -998 ("can't get final child's PID
#   from pipe: EOF"). On `create`/`run` (the bundle's config.json) and on `exec` (the --process
#   file), CAP_SYS_RESOURCE is dropped from every capability set and a negative oomScoreAdj
#   becomes 0.
#
# Plain sh + GNU sed (the base has no jq or python); from docs/lab-runtime.md, extended to `exec`
# (docker exec --privileged) and to whitespace/newlines in the JSON (sed -z: the file as one line).
REAL=/usr/bin/runc

cmd=
bundle=.
process=
want=
for a in "$@"; do
  if [ -n "$want" ]; then
    case $want in
      bundle) bundle=$a ;;
      process) process=$a ;;
    esac
    want=
    continue
  fi
  if [ -z "$cmd" ]; then
    # global options before the command; those listed take a value as the next argument
    case $a in
      --root|--log|--log-format|--criu|--rootless) want=skip ;;
      -*) ;;
      *) cmd=$a ;;
    esac
    continue
  fi
  case $a in
    --bundle|-b) want=bundle ;;
    --bundle=*) bundle=${a#--bundle=} ;;
    --process|-p) want=process ;;
    --process=*) process=${a#--process=} ;;
  esac
done

fix() {
  [ -f "$1" ] || return 0
  sed -z -i \
    -e 's/"CAP_SYS_RESOURCE"[[:space:]]*,[[:space:]]*//g' \
    -e 's/,[[:space:]]*"CAP_SYS_RESOURCE"//g' \
    -e 's/"CAP_SYS_RESOURCE"//g' \
    -e 's/"oomScoreAdj"[[:space:]]*:[[:space:]]*-[0-9]*/"oomScoreAdj":0/g' "$1"
}

case $cmd in
  create|run) fix "$bundle/config.json" ;;
  exec) [ -n "$process" ] && fix "$process" ;;
esac
exec "$REAL" "$@"

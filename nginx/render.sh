#!/bin/sh
# Renders templates/default.conf.template the way the nginx image does (envsubst of the
# NGINX_* variables set by 15-discodeit-lb.envsh), for running the same config on a host
# nginx (the local multi-instance test harness): nginx/render.sh OUTPUT_FILE
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/15-discodeit-lb.envsh"
envsubst '${NGINX_LB_METHOD} ${NGINX_UPSTREAM_SERVERS} ${NGINX_PORT} ${NGINX_WEB_ROOT}' \
    <"$here/templates/default.conf.template" >"$1"

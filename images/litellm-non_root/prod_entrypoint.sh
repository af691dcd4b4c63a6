#!/bin/sh
# The image's entrypoint, behaving as upstream's docker/prod_entrypoint.sh does: the proxy with the
# container's arguments, or supervisord (proxy + separate health app) when SEPARATE_HEALTH_APP=1.
if [ "${SEPARATE_HEALTH_APP:-}" = "1" ]; then
  LITELLM_ARGS="$*"
  export LITELLM_ARGS
  export SUPERVISORD_STOPWAITSECS="${SUPERVISORD_STOPWAITSECS:-3600}"
  exec supervisord -c /etc/supervisord.conf
fi
exec litellm "$@"

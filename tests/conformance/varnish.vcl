# Varnish for `cargo xtask conformance`: what the http-cache-tests suite's
# Docker image runs, i.e. Debian's stock /etc/varnish/default.vcl (an empty
# VCL over the builtin one) with the backend pointed at the suite's server,
# started as
#   varnishd -F -j none -n <tmp> -a 127.0.0.1:18802 -T none -f <this file>
#     -p default_ttl=0 -p default_grace=0 -p default_keep=3600 -s malloc,64M
# (the suite's docker/serve.sh flags; -j none runs it as the current user).
vcl 4.1;

backend default {
    .host = "127.0.0.1";
    .port = "18800";
}

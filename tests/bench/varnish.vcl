# Varnish for `cargo xtask bench cache`: Debian's stock default.vcl (the
# builtin VCL: honours Cache-Control max-age/s-maxage, maps
# stale-while-revalidate to grace, coalesces misses on the same object)
# with the backend pointed at origin-shim, started as
#   varnishd -F -j none -n <tmp> -a 127.0.0.1:18812 -T none -f <this file>
#     -s malloc,256M
vcl 4.1;

backend default {
    .host = "127.0.0.1";
    .port = "18810";
}

#!/usr/bin/env bash
# Make sure a headless-capable Chromium is on this machine, so that
# tests/analysis/test_report.py can render the HTML report the way a person sees it
# (screenshot, every chart image loaded), and a Chinese font, so that the statuses (已结束,
# 未开始...) in the screenshot are readable.
#
# Idempotent and quiet when it is already there. Installs Debian's `chromium` package with
# apt-get when it is missing and this runs as root. Never fails the caller: where it cannot
# install, it says so loudly and the render test skips (unless
# VOLCENGINE_LIVE_REQUIRE_CHROMIUM=1, which makes the test fail instead).
set -uo pipefail
# Root's cron runs with PATH=/usr/bin:/bin: without the sbin folders dpkg (under apt-get)
# stops with "ldconfig ... not found in PATH", and Debian's system programs live there.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

have_chromium() {
    command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
        || command -v google-chrome >/dev/null
}

have_cjk_font() {
    command -v fc-list >/dev/null && [[ -n $(fc-list :lang=zh 2>/dev/null) ]]
}

if have_chromium && have_cjk_font; then
    exit 0
fi

shout() {
    {
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!!! ensure-chromium: $*"
        echo "!!! The headless-Chromium report render test will be SKIPPED on this machine."
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
}

if have_chromium && { ! command -v apt-get >/dev/null || [[ $(id -u) -ne 0 ]]; }; then
    echo "ensure-chromium: no Chinese font (fonts-wqy-microhei); statuses show as boxes" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    shout "no chromium and no apt-get to install it (install Chromium by hand)."
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    shout "no chromium; run as root, or: sudo apt-get install -y chromium"
    exit 0
fi

packages=()
have_chromium || packages+=(chromium)
have_cjk_font || packages+=(fonts-wqy-microhei)
echo "ensure-chromium: installing ${packages[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${packages[@]}"; } \
    >/tmp/ensure-chromium.log 2>&1; then
    shout "apt-get install ${packages[*]} failed (log: /tmp/ensure-chromium.log)."
    exit 0
fi
if ! have_chromium; then
    shout "the chromium package installed but no chromium command was found."
    exit 0
fi
have_cjk_font || echo "ensure-chromium: no Chinese font; statuses show as boxes in screenshots" >&2
echo "ensure-chromium: ${packages[*]} installed" >&2

// mmdc drives the system's chromium (scripts/ensure-sysdeps.sh --test installs it): never download a browser.
module.exports = { skipDownload: true };

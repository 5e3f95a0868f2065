#!/usr/bin/env bash
# Render a sticky PR comment body (Markdown, as `wf pr comment-plan` / the report step post it) to a PNG that looks
# like GitHub's rendering: markdown-it (CommonMark + GFM tables, raw HTML such as <details> allowed) styled with
# github-markdown-css (light theme), inside an 880 px comment box, screenshotted by headless Chromium.
# Made the README screenshots docs/img/gitops-comment-results.png and docs/img/gitops-comment-plan.png:
#
#   scripts/render-comment.sh docs/gitops-example-comment.md docs/img/gitops-comment-results.png
#   scripts/render-comment.sh --section plan --open-details docs/gitops-example-comment.md docs/img/gitops-comment-plan.png
#
# Options:
#   --section NAME    keep only <!-- wf:section=NAME --> ... <!-- wf:end=NAME --> (run or plan); default: whole body
#   --open-details    render <details> blocks expanded (as after a click on the summary)
#   --scale N         device scale factor (default 1; 2 gives a sharper but ~3x larger PNG)
#
# Only the comment body is rendered: when the file holds a `<!-- wf:` marker line, everything above the first one
# (e.g. the explanatory preamble of docs/gitops-example-comment.md) is dropped. Relative image paths resolve against
# the Markdown file's folder, so `img/gitops-example-heatmap.png` shows the local copy. It is an approximation of
# github.com (no avatar, no reactions, GitHub's own fonts only when installed), not a capture of github.com itself.
#
# Not run by CI. Prerequisites (Debian 12; node/npm from any source):
#   apt-get install -y chromium imagemagick pngquant fonts-noto-core fonts-liberation
#   npm install --prefix "$RENDER_TOOLS" markdown-it github-markdown-css   # done automatically when missing
# RENDER_TOOLS (default $TMPDIR/render-comment, /tmp when TMPDIR is unset) holds node_modules and the intermediate files, never the repository.
# pngquant is optional (without it ImageMagick writes an 8-bit palette PNG).
set -euo pipefail

section="" open_details=0 scale=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --section) section="$2"; shift 2 ;;
    --open-details) open_details=1; shift ;;
    --scale) scale="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -eq 2 ]] || { echo "usage: $0 [--section run|plan] [--open-details] [--scale N] IN.md OUT.png" >&2; exit 2; }
in=$(realpath "$1")
out=$(realpath -m "$2")

tools=${RENDER_TOOLS:-${TMPDIR:-/tmp}/render-comment}
mkdir -p "$tools"
if [[ ! -d "$tools/node_modules/markdown-it" || ! -d "$tools/node_modules/github-markdown-css" ]]; then
  npm install --prefix "$tools" --no-audit --no-fund --silent markdown-it github-markdown-css >&2
fi
chromium_bin=$(command -v chromium || command -v chromium-browser || command -v google-chrome) ||
  { echo "no chromium on PATH (apt-get install -y chromium)" >&2; exit 1; }

# Markdown -> one self-contained HTML page (CSS inlined; <base> makes relative image paths local files).
cat > "$tools/render.js" <<'JS'
const fs = require('fs'), path = require('path');
const [inPath, htmlPath, section, openDetails] = process.argv.slice(2);
let md = fs.readFileSync(inPath, 'utf8').replace(/\r\n/g, '\n');
const first = md.search(/^<!-- wf:/m);            // drop any preamble above the comment body
if (first > 0) md = md.slice(first);
if (section) {
  const start = md.indexOf(`<!-- wf:section=${section} -->`), endTag = `<!-- wf:end=${section} -->`;
  const end = md.indexOf(endTag, start);
  if (start < 0 || end < 0) { console.error(`no section ${section} in ${inPath}`); process.exit(1); }
  md = md.slice(start, end + endTag.length);
}
if (openDetails === '1') md = md.replace(/<details>/g, '<details open>');
const markdownIt = require('markdown-it')({ html: true, linkify: true });   // GitHub: raw HTML + autolinks
const body = markdownIt.render(md);
const css = fs.readFileSync(require.resolve('github-markdown-css/github-markdown-light.css'), 'utf8');
const base = 'file://' + path.dirname(inPath) + '/';
fs.writeFileSync(htmlPath, `<!doctype html><html><head><meta charset="utf-8"><base href="${base}">
<style>${css}
html, body { margin: 0; background: #ffffff; }
.page { padding: 16px; }
.comment { width: 880px; border: 1px solid #d1d9e0; border-radius: 6px; overflow: hidden; }
.comment-header { background: #f6f8fa; border-bottom: 1px solid #d1d9e0; padding: 8px 16px; color: #59636e;
  font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
.comment-header strong { color: #1f2328; font-weight: 600; }
.comment-header .bot { border: 1px solid #d1d9e0; border-radius: 2em; padding: 0 7px; font-size: 12px; font-weight: 500; margin: 0 4px; }
.markdown-body { box-sizing: border-box; padding: 16px; font-size: 14px; }
</style></head><body><div class="page"><div class="comment">
<div class="comment-header"><strong>github-actions</strong><span class="bot">bot</span> commented</div>
<article class="markdown-body">
${body}
</article></div></div></body></html>
`);
JS
NODE_PATH="$tools/node_modules" node "$tools/render.js" "$in" "$tools/comment.html" "$section" "$open_details"

# Screenshot a window taller than the page, then trim the blank space and put back a 16 px margin.
flags=(--headless --disable-gpu --hide-scrollbars --force-device-scale-factor="$scale" --window-size=920,8000
       --virtual-time-budget=3000 --allow-file-access-from-files --screenshot="$tools/shot.png")
[[ $EUID -eq 0 ]] && flags+=(--no-sandbox)   # Chromium refuses to run as root with its sandbox
"$chromium_bin" "${flags[@]}" "file://$tools/comment.html" >/dev/null 2>&1
[[ -s "$tools/shot.png" ]] || { echo "chromium wrote no screenshot" >&2; exit 1; }
convert "$tools/shot.png" -trim +repage -bordercolor white -border $((16 * scale)) "$tools/trimmed.png"

mkdir -p "$(dirname "$out")"
if command -v pngquant >/dev/null; then
  pngquant --force --speed 1 --strip --output "$out" 256 "$tools/trimmed.png"
else
  convert "$tools/trimmed.png" -strip PNG8:"$out"
fi
rm -f "$tools/shot.png" "$tools/trimmed.png"
echo "$out: $(identify -format '%wx%h' "$out"), $(stat -c %s "$out") bytes" >&2

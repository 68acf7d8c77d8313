#!/usr/bin/env bash
# Installs the Debian font packages the shipped model's synthetic crops were drawn with
# (docs/synth.md, "Fonts"). Run as root on Debian/Ubuntu; the files land under
# /usr/share/fonts, which `semimtr synth --fonts system` (and `fonts: system` in a recipe) reads.
# The tests and CI never need these: they draw with matplotlib's bundled fonts.
set -euo pipefail
PACKAGES=(
  # text faces: sans, serif, mono, condensed and rounded families
  fonts-urw-base35 fonts-texgyre fonts-inter fonts-lato fonts-roboto-unhinted fonts-roboto-slab
  fonts-liberation2 fonts-crosextra-carlito fonts-crosextra-caladea fonts-freefont-ttf
  fonts-open-sans fonts-cantarell fonts-karla fonts-manrope fonts-cabin fonts-dosis
  fonts-quicksand fonts-comfortaa fonts-play fonts-ebgaramond fonts-linuxlibertine
  fonts-paratype fonts-cmu fonts-lmodern fonts-sil-charis fonts-sil-andika fonts-noto-core
  fonts-clear-sans fonts-b612 fonts-allerta fonts-oldstandard fonts-quattrocento fonts-jura
  fonts-go fonts-hack fonts-courier-prime fonts-league-mono fonts-fantasque-sans
  # the ADF collection
  fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis fonts-adf-gillius
  fonts-adf-ikarius fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania
  fonts-adf-romande fonts-adf-solothurn fonts-adf-switzera fonts-adf-tribun
  fonts-adf-universalis fonts-adf-verana
  # signage, display and hand-drawn faces
  fonts-roadgeek fonts-national-park fonts-opendin fonts-bebas-neue fonts-league-spartan
  fonts-aenigma fonts-dustin fonts-lobster fonts-lobstertwo fonts-cabinsketch
  fonts-comic-neue fonts-humor-sans fonts-dancingscript fonts-kaushanscript fonts-cherrybomb
  fonts-leckerli-one fonts-lemonada fonts-engadget fonts-f500 fonts-femkeklaver
  fonts-junction fonts-lindenhill fonts-goudybookletter fonts-isabella fonts-beteckna
  fonts-millimetre fonts-ocr-a fonts-averia-gwf fonts-averia-sans-gwf fonts-averia-serif-gwf
)
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
fc-cache -f >/dev/null 2>&1 || true
echo "installed ${#PACKAGES[@]} font packages"

# cmake -DOUT=demo_assets.c -DDIR=server/demo -P embed.cmake
# Writes the demo files as C byte arrays (NUL-terminated; len excludes the NUL).
set(assets
    "/|index.html|text/html"
    "/demo/app.js|app.js|text/javascript"
    "/demo/style.css|style.css|text/css")
set(body "/* Generated from server/demo/ by embed.cmake at build time: do not edit. */\n")
string(APPEND body "#include \"demo_assets.h\"\n\n")
set(table "")
set(i 0)
foreach(a IN LISTS assets)
  string(REPLACE "|" ";" f "${a}")
  list(GET f 0 url)
  list(GET f 1 file)
  list(GET f 2 type)
  file(READ ${DIR}/${file} hex HEX)
  string(LENGTH "${hex}" n)
  math(EXPR n "${n} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(REGEX REPLACE "((0x..,){16})" "\\1\n" hex "${hex}")
  string(APPEND body "static const unsigned char asset${i}[] = {\n${hex}0x00};\n\n")
  string(APPEND table "    {\"${url}\", \"${type}; charset=utf-8\", asset${i}, ${n}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "const demo_asset demo_assets[] = {\n${table}};\n")
string(APPEND body "const int demo_nassets = ${i};\n")
file(WRITE ${OUT}.tmp "${body}")
file(RENAME ${OUT}.tmp ${OUT})

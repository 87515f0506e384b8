# embed_status.cmake - turn server/status.html into C data at build time
# (cmake -P, no xxd): the page's bytes, and the Content-Security-Policy
# that lets in exactly its one inline <style> and one inline <script>,
# named by the SHA-256 of their text (CSP Level 2 hash sources).
#
#   cmake -DIN=status.html -DOUT=status_page.c -P embed_status.cmake
#
# The page must be plain ASCII with LF line ends: a browser hashes the
# text of a block after decoding and newline normalisation, so any other
# byte could make its hash differ from the one computed here over the
# file's bytes.
cmake_minimum_required(VERSION 3.18)
if(NOT IN OR NOT OUT)
  message(FATAL_ERROR "embed_status.cmake: set -DIN=<html> and -DOUT=<c file>")
endif()

file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR size "${hexlen} / 2")
if(size EQUAL 0)
  message(FATAL_ERROR "${IN}: empty")
endif()
# Every byte must be TAB, LF or 0x20..0x7e.
string(REGEX MATCHALL "[0-9a-f][0-9a-f]" bytes "${hex}")
set(bad ${bytes})
list(FILTER bad INCLUDE REGEX "^(0[0-8b-f]|1.|7f|[89a-f].)$")
if(bad)
  list(GET bad 0 b)
  message(FATAL_ERROR "${IN}: byte 0x${b}: the page must be ASCII with LF "
                      "line ends (use entities or \\u escapes)")
endif()

file(READ "${IN}" page)

# The text between the only <tag> and its </tag>.
function(inline_block tag out)
  string(FIND "${page}" "<${tag}>" open)
  string(FIND "${page}" "</${tag}>" close)
  string(FIND "${page}" "<${tag}>" last REVERSE)
  if(open LESS 0 OR close LESS open OR NOT last EQUAL open)
    message(FATAL_ERROR "${IN}: want exactly one <${tag}> ... </${tag}>")
  endif()
  string(LENGTH "<${tag}>" taglen)
  math(EXPR start "${open} + ${taglen}")
  math(EXPR len "${close} - ${start}")
  string(SUBSTRING "${page}" ${start} ${len} text)
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# base64 of the bytes a hex string spells (RFC 4648, with padding).
function(hex_to_base64 hexstr out)
  set(abc "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
  string(LENGTH "${hexstr}" n)
  set(res "")
  set(pos 0)
  while(pos LESS n)
    math(EXPR left "${n} - ${pos}")
    if(left GREATER 6)
      set(left 6)
    endif()
    string(SUBSTRING "${hexstr}" ${pos} ${left} chunk)
    set(pad "")
    if(left EQUAL 4)
      set(chunk "${chunk}00")
      set(pad "=")
    elseif(left EQUAL 2)
      set(chunk "${chunk}0000")
      set(pad "==")
    endif()
    math(EXPR v "0x${chunk}")
    foreach(shift 18 12 6 0)
      math(EXPR k "(${v} >> ${shift}) & 63")
      string(SUBSTRING "${abc}" ${k} 1 c)
      string(APPEND res "${c}")
    endforeach()
    if(pad)
      string(LENGTH "${res}" rl)
      string(LENGTH "${pad}" pl)
      math(EXPR rl "${rl} - ${pl}")
      string(SUBSTRING "${res}" 0 ${rl} res)
      string(APPEND res "${pad}")
    endif()
    math(EXPR pos "${pos} + 6")
  endwhile()
  set(${out} "${res}" PARENT_SCOPE)
endfunction()

inline_block(style style_text)
inline_block(script script_text)
string(SHA256 style_hex "${style_text}")
string(SHA256 script_hex "${script_text}")
hex_to_base64("${style_hex}" style_b64)
hex_to_base64("${script_hex}" script_b64)

# default-src 'none' covers everything not named; base-uri and form-action
# do not fall back to it.  img-src data: is the empty favicon, which keeps
# the browser from asking for /favicon.ico.
set(csp "default-src 'none'; script-src 'sha256-${script_b64}'; style-src 'sha256-${style_b64}'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," array "${hex}")
string(REPEAT "0x[0-9a-f][0-9a-f]," 12 row)
string(REGEX REPLACE "(${row})" "\\1\n" array "${array}")

set(c "/* Generated from status.html by embed_status.cmake: do not edit. */\n")
string(APPEND c "#include \"status.h\"\n\n")
string(APPEND c "const unsigned char server_status_html[] = {\n${array}\n};\n")
string(APPEND c "const size_t server_status_html_len = ${size};\n")
string(APPEND c "const char server_status_csp[] =\n    \"${csp}\";\n")
file(WRITE "${OUT}" "${c}")

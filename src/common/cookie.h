// mure — where the node's cookie comes from. Never argv.
#pragma once

#include <string>

#include "mure/config.h"
#include "mure/status.h"

namespace mure {

/// The cookie, from (in order) stdin's first line in Port mode (`stdin_line`, read by the caller
/// before anything else can fail, so the launcher's write always lands), cfg.cookie_file,
/// $MURE_COOKIE, or ~/.erlang.cookie. Refuses an empty cookie or one with whitespace; warns when a
/// cookie file can be read by group or others.
Result<std::string> LoadCookie(const Config& cfg, const Result<std::string>* stdin_line = nullptr);

/// Read one line from a file descriptor byte by byte (nothing past the newline is consumed).
Result<std::string> ReadLineFromFd(int fd, size_t max_len);

/// Check a cookie's form: 1..255 printable, non-space characters.
Status ValidateCookie(const std::string& cookie, const std::string& source);

}  // namespace mure

#include "common/cookie.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace mure {

Result<std::string> ReadLineFromFd(int fd, size_t max_len) {
  std::string line;
  char c;
  while (true) {
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (line.empty()) return Status::BadArg("stdin closed before a cookie line arrived");
      break;
    }
    if (c == '\n') break;
    if (line.size() >= max_len) return Status::BadArg("the cookie line on stdin is longer than " + std::to_string(max_len));
    line.push_back(c);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

Status ValidateCookie(const std::string& cookie, const std::string& source) {
  if (cookie.empty()) return Status::BadArg("the cookie from " + source + " is empty");
  if (cookie.size() > 255) return Status::BadArg("the cookie from " + source + " is longer than 255 characters");
  for (unsigned char c : cookie) {
    if (c <= 32 || c >= 127) return Status::BadArg("the cookie from " + source + " has a space or control character");
  }
  return Status::Ok();
}

namespace {

Result<std::string> FromFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::BadArg("cannot read cookie file " + path);
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    LogWarn("cookie file " + path + " can be read by other users (mode " +
            std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
            std::to_string(st.st_mode & 7) + "); chmod 600 it: whoever holds the cookie controls the node");
  }
  std::ifstream in(path);
  if (!in) return Status::BadArg("cannot read cookie file " + path);
  std::string cookie;
  std::getline(in, cookie);
  while (!cookie.empty() && (cookie.back() == '\r' || cookie.back() == ' ')) cookie.pop_back();
  MURE_RETURN_IF_ERROR(ValidateCookie(cookie, path));
  return cookie;
}

}  // namespace

Result<std::string> LoadCookie(const Config& cfg, const Result<std::string>* stdin_line) {
  if (cfg.port_mode) {
    if (!stdin_line) return Status::BadArg("Port mode needs the cookie line from stdin");
    if (!stdin_line->ok()) return stdin_line->status();
    MURE_RETURN_IF_ERROR(ValidateCookie(stdin_line->value(), "stdin"));
    return stdin_line->value();
  }
  if (!cfg.cookie_file.empty()) return FromFile(cfg.cookie_file);
  if (const char* env = std::getenv("MURE_COOKIE"); env && *env) {
    std::string cookie = env;
    MURE_RETURN_IF_ERROR(ValidateCookie(cookie, "$MURE_COOKIE"));
    return cookie;
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    std::string path = std::string(home) + "/.erlang.cookie";
    if (::access(path.c_str(), F_OK) == 0) return FromFile(path);
  }
  return Status::BadArg("no cookie: refusing to start. Give one with --cookie-file FILE, $MURE_COOKIE, "
                        "~/.erlang.cookie, or on stdin with --port-mode (never on the command line)");
}

}  // namespace mure

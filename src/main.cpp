// mure_node — a hidden Erlang node that keeps tensors resident and computes on BLIS and OpenCL.
//
// main wires the pieces together and runs the node's event loop on Boost.Asio: signals, the
// stdin watch in Port mode, and a timer that reaps ended connections. Everything else runs on the
// connection threads and the executors' work queues.

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>

#include "common/cookie.h"
#include "common/log.h"
#include "common/signals.h"
#include "dist/node.h"
#include "exec/blis_executor.h"
#include "exec/opencl_executor.h"
#include "mure/config.h"
#include "sched/service.h"
#include "store/tensor_store.h"

namespace {

int Fail(const std::string& message, int code) {
  std::string line = "mure_node: " + message + "\n";
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mure;
  ::signal(SIGPIPE, SIG_IGN);  // a peer that vanishes must not kill the node
  // A crash says so on stderr (one line naming the signal and the thread), then dies as before.
  // Under AddressSanitizer its own handlers stay until OpenCL's set-up, as they always did.
  AltSignalStack alt_stack;
  if (CrashReporterEnabled()) RestoreFatalSignals();
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(UsageText().c_str(), stdout);
      return 0;
    }
    if (std::strcmp(argv[i], "--version") == 0) {
      std::fputs(VersionText().c_str(), stdout);
      return 0;
    }
  }
  // In Port mode the launcher writes the cookie first thing: read it before anything can fail,
  // so that a bad flag ends in exit status 2, never in a broken pipe on the launcher's side.
  bool port_mode = false;
  for (int i = 1; i < argc; ++i) port_mode |= std::strcmp(argv[i], "--port-mode") == 0;
  Result<std::string> stdin_line = port_mode ? ReadLineFromFd(STDIN_FILENO, 1024) : Result<std::string>(std::string());
  auto cfg_or = ConfigFromArgs(argc, argv);
  // The error alone, and where the flags are: the whole usage text would push it off the screen.
  if (!cfg_or.ok()) {
    const std::string& why = cfg_or.status().message();
    return Fail(why.find("--help") == std::string::npos ? why + " (mure_node --help lists the flags)" : why, 2);
  }
  const Config cfg = std::move(cfg_or.value());
  SetLogLevel(cfg.log_level);
  if (!cfg.config_path.empty()) {
    LogInfo("config read from " + cfg.config_path);
  } else {
    LogInfo("no config file (no --config, no $MURE_CONFIG, none at ../config/mure.conf beside the binary): "
            "built-in defaults");
  }

  auto cookie = LoadCookie(cfg, &stdin_line);
  if (!cookie.ok()) return Fail(cookie.status().message(), 2);
  if (cfg.port_mode) ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // belt and braces beside the stdin watch

  TensorStore store(cfg.memory_limit, cfg.buffer_cache);
  std::unique_ptr<BlisExecutor> blis;
  if (cfg.use_blis) {
    auto b = BlisExecutor::Create(cfg);
    if (!b.ok()) return Fail("BLIS: " + b.status().message(), 1);
    blis = std::move(b.value());
  }
  std::unique_ptr<OpenClExecutor> opencl;
  if (cfg.use_opencl) {
    auto o = OpenClExecutor::Create(cfg);
    if (o.ok()) {
      opencl = std::move(o.value());
    } else {
      LogWarn("OpenCL unavailable, elementwise ops will answer {:error, {:unsupported, ...}}: " + o.status().message());
    }
  }
  RestoreFatalSignals();  // a crash must be a crash, reported: see common/signals.h
  Service service(cfg, store, blis.get(), opencl.get());
  auto node = Node::Start(cfg, *cookie, service, store);
  if (!node.ok()) return Fail(node.status().message(), 1);

  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (!ec) LogInfo(std::string("signal ") + strsignal(sig) + ": shutting down");
    io.stop();
  });
  boost::asio::steady_timer reaper(io);
  std::function<void()> reap = [&] {
    reaper.expires_after(std::chrono::seconds(1));
    reaper.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      (*node)->Reap();
      reap();
    });
  };
  reap();
  std::unique_ptr<boost::asio::posix::stream_descriptor> in;
  char scratch[256];
  std::function<void()> watch_stdin = [&] {
    in->async_read_some(boost::asio::buffer(scratch), [&](const boost::system::error_code& ec, size_t) {
      if (ec) {
        LogInfo("stdin closed (the BEAM that launched this node is gone): shutting down");
        io.stop();
        return;
      }
      watch_stdin();
    });
  };
  if (cfg.port_mode) {
    in = std::make_unique<boost::asio::posix::stream_descriptor>(io, ::dup(STDIN_FILENO));
    watch_stdin();
    std::printf("MURE_READY %s %d\n", cfg.name.c_str(), static_cast<int>(::getpid()));
    std::fflush(stdout);
  }
  io.run();

  // Leave the cluster first (the epmd name goes with the publish socket), then end at once:
  // executors may be deep in a long computation whose result no one can receive any more.
  (*node)->Shutdown();
  LogInfo("node " + cfg.name + " stopped");
  std::_Exit(0);
}

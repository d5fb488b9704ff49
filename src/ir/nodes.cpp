#include "ir/nodes.h"

namespace mure::ir {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

std::string_view LegacyName(Legacy l, std::string_view general) {
  switch (l) {
    case Legacy::kMatmul: return "matmul";
    case Legacy::kAdd: return "add";
    case Legacy::kMultiply: return "multiply";
    case Legacy::kNone: break;
  }
  return general;
}

}  // namespace

std::string_view AtomName(const Node& node) {
  return std::visit(Overloaded{
                        [](const Unary&) -> std::string_view { return "unary"; },
                        [](const Binary& n) { return LegacyName(n.legacy, "binary"); },
                        [](const Reduce&) -> std::string_view { return "reduce"; },
                        [](const AsType&) -> std::string_view { return "as_type"; },
                        [](const Bitcast&) -> std::string_view { return "bitcast"; },
                        [](const Reshape&) -> std::string_view { return "reshape"; },
                        [](const Transpose&) -> std::string_view { return "transpose"; },
                        [](const Slice&) -> std::string_view { return "slice"; },
                        [](const Take&) -> std::string_view { return "take"; },
                        [](const Iota&) -> std::string_view { return "iota"; },
                        [](const Eye&) -> std::string_view { return "eye"; },
                        [](const Full&) -> std::string_view { return "full"; },
                        [](const RandomUniform&) -> std::string_view { return "random_uniform"; },
                        [](const RandomNormal&) -> std::string_view { return "random_normal"; },
                        [](const Select&) -> std::string_view { return "select"; },
                        [](const Clip&) -> std::string_view { return "clip"; },
                        [](const Broadcast&) -> std::string_view { return "broadcast"; },
                        [](const Reverse&) -> std::string_view { return "reverse"; },
                        [](const Pad&) -> std::string_view { return "pad"; },
                        [](const Concatenate&) -> std::string_view { return "concatenate"; },
                        [](const Stack&) -> std::string_view { return "stack"; },
                        [](const PutSlice&) -> std::string_view { return "put_slice"; },
                        [](const Gather&) -> std::string_view { return "gather"; },
                        [](const Sort&) -> std::string_view { return "sort"; },
                        [](const Argsort&) -> std::string_view { return "argsort"; },
                        [](const Dot& n) { return LegacyName(n.legacy, "dot"); },
                        [](const Outer&) -> std::string_view { return "outer"; },
                        [](const Fft& n) -> std::string_view { return n.inverse ? "ifft" : "fft"; },
                        [](const Linalg& n) { return LinalgName(n.op); },
                        [](const Elem&) -> std::string_view { return "elem"; },
                        [](const Window&) -> std::string_view { return "window"; },
                        [](const WindowScatter&) -> std::string_view { return "window_scatter"; },
                        [](const Indexed&) -> std::string_view { return "indexed"; },
                        [](const Cumulative&) -> std::string_view { return "cumulative"; },
                        [](const DynamicSlice&) -> std::string_view { return "dynamic_slice"; },
                        [](const DynamicPutSlice&) -> std::string_view { return "dynamic_put_slice"; },
                        [](const While&) -> std::string_view { return "while"; },
                        [](const If&) -> std::string_view { return "if"; },
                    },
                    node);
}

std::string Label(const Node& node) {
  std::string_view name;
  if (auto* u = std::get_if<Unary>(&node)) name = u->name;
  if (auto* b = std::get_if<Binary>(&node); b && b->legacy == Legacy::kNone) name = b->name;
  if (auto* r = std::get_if<Reduce>(&node)) name = r->name;
  if (auto* w = std::get_if<Window>(&node)) name = w->name;
  if (auto* w = std::get_if<WindowScatter>(&node)) name = w->name;
  if (auto* i = std::get_if<Indexed>(&node)) name = i->name;
  if (auto* c = std::get_if<Cumulative>(&node)) name = c->name;
  return ":" + std::string(AtomName(node)) + (name.empty() ? "" : " :" + std::string(name.substr(0, 64)));
}

std::vector<Id> Operands(const Node& node) {
  return std::visit(Overloaded{
                        [](const Unary& n) { return std::vector<Id>{n.x}; },
                        [](const Binary& n) { return std::vector<Id>{n.a, n.b}; },
                        [](const Reduce& n) { return std::vector<Id>{n.x}; },
                        [](const AsType& n) { return std::vector<Id>{n.x}; },
                        [](const Bitcast& n) { return std::vector<Id>{n.x}; },
                        [](const Reshape& n) { return std::vector<Id>{n.x}; },
                        [](const Transpose& n) { return std::vector<Id>{n.x}; },
                        [](const Slice& n) { return std::vector<Id>{n.x}; },
                        [](const Take& n) { return std::vector<Id>{n.x, n.indices}; },
                        [](const Iota&) { return std::vector<Id>{}; },
                        [](const Eye&) { return std::vector<Id>{}; },
                        [](const Full&) { return std::vector<Id>{}; },
                        [](const RandomUniform&) { return std::vector<Id>{}; },
                        [](const RandomNormal&) { return std::vector<Id>{}; },
                        [](const Select& n) { return std::vector<Id>{n.pred, n.on_true, n.on_false}; },
                        [](const Clip& n) { return std::vector<Id>{n.x, n.lo, n.hi}; },
                        [](const Broadcast& n) { return std::vector<Id>{n.x}; },
                        [](const Reverse& n) { return std::vector<Id>{n.x}; },
                        [](const Pad& n) { return std::vector<Id>{n.x}; },
                        [](const Concatenate& n) { return n.xs; },
                        [](const Stack& n) { return n.xs; },
                        [](const PutSlice& n) { return std::vector<Id>{n.x, n.update}; },
                        [](const Gather& n) { return std::vector<Id>{n.x, n.indices}; },
                        [](const Sort& n) { return std::vector<Id>{n.x}; },
                        [](const Argsort& n) { return std::vector<Id>{n.x}; },
                        [](const Dot& n) { return std::vector<Id>{n.a, n.b}; },
                        [](const Outer& n) { return std::vector<Id>{n.a, n.b}; },
                        [](const Fft& n) { return std::vector<Id>{n.x}; },
                        [](const Linalg& n) { return n.b ? std::vector<Id>{n.a, n.b} : std::vector<Id>{n.a}; },
                        [](const Elem& n) { return std::vector<Id>{n.x}; },
                        [](const Window& n) { return std::vector<Id>{n.x}; },
                        [](const WindowScatter& n) { return std::vector<Id>{n.x, n.source}; },
                        [](const Indexed& n) { return std::vector<Id>{n.x, n.indices, n.updates}; },
                        [](const Cumulative& n) { return std::vector<Id>{n.x}; },
                        [](const DynamicSlice& n) {
                          std::vector<Id> ids{n.x};
                          ids.insert(ids.end(), n.starts.begin(), n.starts.end());
                          return ids;
                        },
                        [](const DynamicPutSlice& n) {
                          std::vector<Id> ids{n.x, n.update};
                          ids.insert(ids.end(), n.starts.begin(), n.starts.end());
                          return ids;
                        },
                        [](const While& n) {
                          std::vector<Id> ids = n.inits;
                          ids.insert(ids.end(), n.invariants.begin(), n.invariants.end());
                          return ids;
                        },
                        [](const If& n) {
                          std::vector<Id> ids{n.pred};
                          ids.insert(ids.end(), n.captured.begin(), n.captured.end());
                          return ids;
                        },
                    },
                    node);
}

bool IsCreation(const Node& node) {
  return std::holds_alternative<Iota>(node) || std::holds_alternative<Eye>(node) ||
         std::holds_alternative<Full>(node) || std::holds_alternative<RandomUniform>(node) ||
         std::holds_alternative<RandomNormal>(node);
}

}  // namespace mure::ir

// RUN: dce
// assign and group have effects: they stay, in order, though nothing reads their results;
// the ops computing what they write stay with them.
func.func @main(%x: tensor<3xf64>) {
  %dead = "gj.exp"(%x) : (tensor<3xf64>) -> tensor<3xf64>
  %v = "gj.tanh"(%x) : (tensor<3xf64>) -> tensor<3xf64>
  %a = "gj.assign"(%v) {var = "w"} : (tensor<3xf64>) -> tensor<3xf64>
  %b = "gj.assign"(%x) {var = "b"} : (tensor<3xf64>) -> tensor<3xf64>
  "gj.group"(%a, %b) : (tensor<3xf64>, tensor<3xf64>) -> ()
  func.return
}
// CHECK:      func.func @main(%arg0: tensor<3xf64>) {
// CHECK-NEXT:   [[V:%[0-9]+]] = "gj.tanh"(%arg0
// CHECK-NEXT:   [[A:%[0-9]+]] = "gj.assign"([[V]]) {var = "w"}
// CHECK-NEXT:   [[B:%[0-9]+]] = "gj.assign"(%arg0) {var = "b"}
// CHECK-NEXT:   "gj.group"([[A]], [[B]]
// CHECK-NEXT:   func.return

// RUN: dce
// assign and group have effects: they stay, in order, though nothing reads their results;
// the ops computing what they write stay with them.
func @main(%x: tensor<3xf64>) {
  %dead = exp %x : (tensor<3xf64>) -> tensor<3xf64>
  %v = tanh %x : (tensor<3xf64>) -> tensor<3xf64>
  %a = assign %v {var = "w"} : (tensor<3xf64>) -> tensor<3xf64>
  %b = assign %x {var = "b"} : (tensor<3xf64>) -> tensor<3xf64>
  group %a, %b : (tensor<3xf64>, tensor<3xf64>)
  return : ()
}
// CHECK:      func @main(%arg0: tensor<3xf64>) {
// CHECK-NEXT:   [[V:%[0-9]+]] = tanh %arg0
// CHECK-NEXT:   [[A:%[0-9]+]] = assign [[V]] {var = "w"}
// CHECK-NEXT:   [[B:%[0-9]+]] = assign %arg0 {var = "b"}
// CHECK-NEXT:   group [[A]], [[B]]
// CHECK-NEXT:   return

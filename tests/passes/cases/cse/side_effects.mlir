// RUN: cse
// Two assigns of the same value to the same variable are two writes: never merged, nor
// are groups.
func @main(%x: tensor<3xf64>) {
  %a = assign %x {var = "w"} : (tensor<3xf64>) -> tensor<3xf64>
  %b = assign %x {var = "w"} : (tensor<3xf64>) -> tensor<3xf64>
  group %a, %b : (tensor<3xf64>, tensor<3xf64>)
  group %a, %b : (tensor<3xf64>, tensor<3xf64>)
  return %a, %b : (tensor<3xf64>, tensor<3xf64>)
}
// CHECK:      [[A:%[0-9]+]] = assign %arg0 {var = "w"}
// CHECK-NEXT: [[B:%[0-9]+]] = assign %arg0 {var = "w"}
// CHECK-NEXT: group [[A]], [[B]]
// CHECK-NEXT: group [[A]], [[B]]
// CHECK-NEXT: return [[A]], [[B]]

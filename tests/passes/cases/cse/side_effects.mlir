// RUN: cse
// Two assigns of the same value to the same variable are two writes: never merged, nor
// are groups.
func.func @main(%x: tensor<3xf64>) -> (tensor<3xf64>, tensor<3xf64>) {
  %a = "gj.assign"(%x) {var = "w"} : (tensor<3xf64>) -> tensor<3xf64>
  %b = "gj.assign"(%x) {var = "w"} : (tensor<3xf64>) -> tensor<3xf64>
  "gj.group"(%a, %b) : (tensor<3xf64>, tensor<3xf64>) -> ()
  "gj.group"(%a, %b) : (tensor<3xf64>, tensor<3xf64>) -> ()
  func.return %a, %b : tensor<3xf64>, tensor<3xf64>
}
// CHECK:      [[A:%[0-9]+]] = "gj.assign"(%arg0) {var = "w"}
// CHECK-NEXT: [[B:%[0-9]+]] = "gj.assign"(%arg0) {var = "w"}
// CHECK-NEXT: "gj.group"([[A]], [[B]]
// CHECK-NEXT: "gj.group"([[A]], [[B]]
// CHECK-NEXT: func.return [[A]], [[B]]

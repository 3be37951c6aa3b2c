// RUN: canonicalize dce
// Ops whose operands are all constants fold through their reference kernels, along
// chains, for every dtype: float maths, an integer add, a comparison.
func.func @main(%x: tensor<f64>) -> (tensor<f64>, tensor<i32>, tensor<i1>) {
  %a = "gj.constant"() {value = dense<[1.0, 2.0, 3.0]> : tensor<3xf64>} : () -> tensor<3xf64>
  %two = "gj.constant"() {value = dense<2.0> : tensor<f64>} : () -> tensor<f64>
  %scaled = "gj.mul"(%a, %two) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %sum = "gj.reduce_sum"(%scaled) {axes = [0], keepdims = false} : (tensor<3xf64>) -> tensor<f64>
  %y = "gj.add"(%x, %sum) : (tensor<f64>, tensor<f64>) -> tensor<f64>
  %i = "gj.constant"() {value = dense<2> : tensor<i32>} : () -> tensor<i32>
  %j = "gj.constant"() {value = dense<3> : tensor<i32>} : () -> tensor<i32>
  %k = "gj.add"(%i, %j) : (tensor<i32>, tensor<i32>) -> tensor<i32>
  %less = "gj.less"(%k, %i) : (tensor<i32>, tensor<i32>) -> tensor<i1>
  func.return %y, %k, %less : tensor<f64>, tensor<i32>, tensor<i1>
}
// CHECK:      func.func @main(%arg0: tensor<f64>) -> (tensor<f64>, tensor<i32>, tensor<i1>) {
// CHECK-NEXT:   %0 = "gj.constant"() {value = dense<12.0> : tensor<f64>}
// CHECK-NEXT:   %1 = "gj.add"(%arg0, %0
// CHECK-NEXT:   %2 = "gj.constant"() {value = dense<5> : tensor<i32>}
// CHECK-NEXT:   %3 = "gj.constant"() {value = dense<false> : tensor<i1>}
// CHECK-NEXT:   func.return %1, %2, %3

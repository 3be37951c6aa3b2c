// RUN: dce
// A cond result nothing uses is dropped from the cond and from both branches' yields,
// and the branch ops computing it go.
func @main(%p: tensor<i1>, %x: tensor<f64>) {
  %r:2 = cond %p : (tensor<i1>) -> (tensor<f64>, tensor<f64>) {
    %e = exp %x : (tensor<f64>) -> tensor<f64>
    %t = tanh %x : (tensor<f64>) -> tensor<f64>
    yield %e, %t : (tensor<f64>, tensor<f64>)
  } else {
    %n = neg %x : (tensor<f64>) -> tensor<f64>
    yield %x, %n : (tensor<f64>, tensor<f64>)
  }
  return %r#1 : (tensor<f64>)
}
// CHECK:      [[R:%[0-9]+]] = cond %arg0 : (tensor<i1>) -> tensor<f64> {
// CHECK-NEXT:   [[T:%[0-9]+]] = tanh %arg1
// CHECK-NEXT:   yield [[T]] : (tensor<f64>)
// CHECK-NEXT: } else {
// CHECK-NEXT:   [[N:%[0-9]+]] = neg %arg1
// CHECK-NEXT:   yield [[N]] : (tensor<f64>)
// CHECK-NEXT: }
// CHECK-NEXT: return [[R]]
// CHECK-NOT:  exp

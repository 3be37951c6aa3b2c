// RUN: cse
// Equal constants are one constant; constants differing in dtype or in the sign of zero
// are not equal.
func.func @main() -> (tensor<2xf64>, tensor<2xf64>, tensor<2xf32>, tensor<f64>, tensor<f64>, tensor<f64>) {
  %a = "gj.constant"() {value = dense<[1.0, 2.0]> : tensor<2xf64>} : () -> tensor<2xf64>
  %b = "gj.constant"() {value = dense<[1.0, 2.0]> : tensor<2xf64>} : () -> tensor<2xf64>
  %c = "gj.constant"() {value = dense<[1.0, 2.0]> : tensor<2xf32>} : () -> tensor<2xf32>
  %z = "gj.constant"() {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  %nz = "gj.constant"() {value = dense<-0.0> : tensor<f64>} : () -> tensor<f64>
  %z2 = "gj.constant"() {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  func.return %a, %b, %c, %z, %nz, %z2 : tensor<2xf64>, tensor<2xf64>, tensor<2xf32>, tensor<f64>, tensor<f64>, tensor<f64>
}
// CHECK:      func.func @main() -> (tensor<2xf64>, tensor<2xf64>, tensor<2xf32>, tensor<f64>, tensor<f64>, tensor<f64>) {
// CHECK-NEXT:   %0 = "gj.constant"() {value = dense<[1.0, 2.0]> : tensor<2xf64>}
// CHECK-NEXT:   %1 = "gj.constant"() {value = dense<[1.0, 2.0]> : tensor<2xf32>}
// CHECK-NEXT:   %2 = "gj.constant"() {value = dense<0.0> : tensor<f64>}
// CHECK-NEXT:   %3 = "gj.constant"() {value = dense<-0.0> : tensor<f64>}
// CHECK-NEXT:   func.return %0, %0, %1, %2, %3, %2
